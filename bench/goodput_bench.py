"""Goodput under a provider's TPM limit: mezzo's shared limiter against a naive client.

The stub LLM (own process) enforces a TPM limit per key. N runs of mixed priority go through
mezzo embedded in this process (limits configured to the same TPM, no fallback route, so
every run is served by the limited primary). Then the same N requests go straight to the
stub with the official `openai` SDK and its default retries (max_retries=2), at the same
concurrency as mezzo's worker pool. For each: tokens served per minute as a share of the
limit, the share of requests answered 429, and how many of the N completed.

    .venv/bin/python bench/goodput_bench.py [--runs 300] [--tpm 24000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from core_support import core_settings, free_port  # noqa: E402
from mezzo import keys  # noqa: E402
from mezzo.config import ProviderLimits  # noqa: E402
from mezzo.logs import configure_logging  # noqa: E402
from mezzo.protocol import CreateWorkspace, SubmitRun  # noqa: E402
from mezzo.service import Mezzo  # noqa: E402
from mezzo.tools.builtin import HUMAN_INPUT_TOOL  # noqa: E402

PRIORITIES = ("high", "normal", "low")
# The same request mezzo sends: the user message and the built-in human-input tool.
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": HUMAN_INPUT_TOOL.name,
            "description": HUMAN_INPUT_TOOL.description,
            "parameters": HUMAN_INPUT_TOOL.parameters,
        },
    }
]


class Stub:
    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.base_url = f"{self.url}/v1"

    def reset(self) -> None:
        httpx.post(f"{self.url}/_stub/reset", trust_env=False).raise_for_status()

    def stats(self) -> dict:
        return httpx.get(f"{self.url}/_stub/stats", trust_env=False).json()


@contextlib.contextmanager
def stub_process(tpm: int, reply_tokens: int) -> Iterator[Stub]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mezzo.cli",
            "stub-llm",
            "--port",
            str(port),
            "--tpm",
            str(tpm),
            "--reply-tokens",
            str(reply_tokens),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1, trust_env=False)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield Stub(port)
    finally:
        proc.terminate()
        proc.wait(10)


def report(name: str, stub: Stub, elapsed: float, completed: int, runs: int, tpm: int) -> None:
    stats = stub.stats()
    tokens = stats["input_tokens"] + stats["output_tokens"]
    per_minute = tokens / elapsed * 60
    share_429 = stats["rate_limited"] / max(1, stats["requests"])
    print(
        f"{name:28s} completed {completed}/{runs}  {elapsed:6.1f} s  "
        f"{per_minute:8.0f} tokens/min = {per_minute / tpm:5.1%} of the limit  "
        f"429s {stats['rate_limited']}/{stats['requests']} = {share_429:.1%}"
    )


async def through_mezzo(stub: Stub, runs: int, tpm: int, concurrency: int) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = core_settings(
            Path(tmp),
            stub,
            max_output_tokens=32,
            concurrency=concurrency,
            provider_limits={"openai:stub-model": ProviderLimits(tpm=tpm)},
            priority_max_wait={"high": float("inf"), "normal": float("inf"), "low": float("inf")},
        )
        mezzo = Mezzo(settings)
        await mezzo.start()
        try:
            await mezzo.create_workspace("local", CreateWorkspace(id="g", budget_tokens=10**12))
            started = time.perf_counter()
            for i in range(runs):
                await mezzo.submit_run(
                    "local", "g", SubmitRun(input=f"request {i}", priority=PRIORITIES[i % 3])
                )
            completed = 0
            async for _ in mezzo.store.tail(
                keys.workspace_key("local", "g"), 0, ["completed", "failed"]
            ):
                completed += 1
                if completed == runs:
                    break
            elapsed = time.perf_counter() - started
            done = len(
                await mezzo.store.read(keys.workspace_key("local", "g"), 0, ["completed"], 100_000)
            )
        finally:
            await mezzo.stop()
    return elapsed, done


async def naive(stub: Stub, runs: int, concurrency: int) -> tuple[float, int]:
    client = openai.AsyncOpenAI(base_url=stub.base_url, api_key="bench")  # default max_retries=2
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(runs):
        queue.put_nowait(i)
    completed = 0

    async def worker() -> None:
        nonlocal completed
        while not queue.empty():
            i = queue.get_nowait()
            try:
                await client.chat.completions.create(
                    model="stub-model",
                    max_completion_tokens=32,
                    tools=TOOLS,  # type: ignore[arg-type]
                    messages=[{"role": "user", "content": f"request {i}"}],
                )
                completed += 1
            except openai.APIError:
                pass

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    await client.close()
    return elapsed, completed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--tpm", type=int, default=24000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    configure_logging("warning", "console")
    print(f"runs={args.runs} stub TPM={args.tpm} concurrency={args.concurrency} (mixed priorities)")
    with stub_process(args.tpm, reply_tokens=20) as stub:
        elapsed, done = asyncio.run(through_mezzo(stub, args.runs, args.tpm, args.concurrency))
        report("mezzo (shared GCRA limiter)", stub, elapsed, done, args.runs, args.tpm)
    with stub_process(args.tpm, reply_tokens=20) as stub:
        elapsed, done = asyncio.run(naive(stub, args.runs, args.concurrency))
        report("openai SDK, default retries", stub, elapsed, done, args.runs, args.tpm)


if __name__ == "__main__":
    main()
