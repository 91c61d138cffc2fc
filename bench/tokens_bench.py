"""Counting a ~100k-token history: cold (every item counted) vs incremental (a step adds two
items to a history already counted). Prints both and their ratio.

    .venv/bin/python bench/tokens_bench.py [--tokens 100000] [--steps 20] [--model gpt-5-mini]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from mezzo.governor.tokens import (
    ChatCounter,
    TranscriptCounter,
    tiktoken_encoding,
    tokenizer_for_model,
)
from mezzo.providers.base import Message, ModelRequest, ToolCall, ToolSpec

VOCABULARY = (
    "the model reads a file and calls a tool to parse the result then writes a summary of "
    "every finding with its severity path line and a suggested fix for the team to review "
    "déjà vu naïve café 東京 데이터 данные"
)
WORDS = VOCABULARY.split()


def _text(rng: random.Random, n_words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n_words)) + "."


def _step(rng: random.Random, i: int) -> list[Message]:
    call = ToolCall(f"call_{i}", "read_file", {"path": f"src/module_{i}.py", "max_lines": 200})
    code = "\n".join(f"def f{i}_{j}(x):\n    return x * {j}  # {_text(rng, 4)}" for j in range(8))
    return [
        Message("user", _text(rng, rng.randint(20, 80))),
        Message("assistant", "", tool_calls=(call,)),
        Message("tool", code, call_id=f"call_{i}"),
        Message("assistant", _text(rng, rng.randint(40, 160))),
    ]


TOOLS = (
    ToolSpec(
        "read_file",
        "Read a file of the workspace.",
        {
            "type": "object",
            "properties": {
                "path": {"type": "string", "description": "Path inside the workspace."},
                "max_lines": {"type": "integer", "description": "Stop after this many lines."},
            },
            "required": ["path"],
        },
    ),
)


def build_history(model: str, target_tokens: int) -> list[Message]:
    rng = random.Random(0)
    counter = ChatCounter.for_model(model)
    history = [Message("system", "You are a careful code reviewer.")]
    total, i = counter.message(history[0]), 0
    while total < target_tokens:
        for message in _step(rng, i):
            history.append(message)
            total += counter.message(message)
        i += 1
    return history


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--model", default="gpt-5-mini")
    args = parser.parse_args()

    started = time.perf_counter()
    tokenizer = tokenizer_for_model(args.model)
    tiktoken_encoding(tokenizer.name)
    load_s = time.perf_counter() - started

    history = build_history(args.model, args.tokens)
    rng = random.Random(1)
    counter = ChatCounter.for_model(args.model)

    cold_s: list[float] = []
    incremental_s: list[float] = []
    for step in range(args.steps):
        cached = TranscriptCounter(counter)
        request = ModelRequest(args.model, tuple(history), TOOLS)
        started = time.perf_counter()
        expected = cached.request(request)
        cold_s.append(time.perf_counter() - started)

        new = (Message("user", _text(rng, 30)), Message("assistant", _text(rng, 60)))
        grown = ModelRequest(args.model, (*history, *new), TOOLS)
        started = time.perf_counter()
        total = cached.request(grown)
        incremental_s.append(time.perf_counter() - started)
        if step == 0:
            assert total == counter.request(grown)
            assert expected == counter.request(request)
            print(
                f"model {args.model} ({tokenizer.name}), history {len(history)} items, "
                f"{expected} tokens; tokenizer load {load_s * 1000:.0f} ms"
            )

    cold, incremental = statistics.median(cold_s), statistics.median(incremental_s)
    print(f"cold count (all items):           {cold * 1000:8.2f} ms  (median of {args.steps})")
    print(
        f"incremental count (2 new items):  {incremental * 1000:8.2f} ms  (median of {args.steps})"
    )
    print(f"ratio cold / incremental:         {cold / incremental:8.1f}x")


if __name__ == "__main__":
    main()
