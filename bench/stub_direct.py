"""Calls straight to the stub LLM server: its capacity, and what the OpenAI provider adds.

The stub runs as a separate process (`mezzo stub-llm`), the client here. Same run, same stub:

- raw httpx, non-streamed and streamed `POST /v1/responses` (the baseline),
- `OpenAIProvider` (official SDK, streaming) for the Responses API and Chat Completions,
- raw httpx with N requests in flight: throughput (bounded by the one client process here)
  and the stub's own CPU time per request (from /proc), i.e. its capacity per core,
- with a 200-message history: the SDK's idiomatic typed `responses.create(**params)` against
  the provider (the SDK's generic `client.post` with raw events), both consuming the stream.

    .venv/bin/python bench/stub_direct.py [--requests 400] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import aclosing

import httpx

from mezzo.providers.base import Message, ModelRequest
from mezzo.providers.openai import OpenAIProvider
from mezzo.providers.openai_wire.requests import responses_params

PROMPT = "Summarise the design of a durable queue in one line."
BODY = {"model": "stub-model", "input": PROMPT}


def start_stub() -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-c", "from mezzo.stub.cli import app; app()", "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    match = re.search(r"(http://127\.0\.0\.1:\d+)/v1", process.stderr.readline())
    if match is None:
        process.kill()
        raise SystemExit("the stub did not start")
    return process, match.group(1)


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (Linux)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def timed(call: Callable[[], Awaitable[object]], count: int) -> list[float]:
    for _ in range(20):  # warm up connections and code paths
        await call()
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def main(requests: int, concurrency: int) -> None:
    process, url = start_stub()
    try:
        async with httpx.AsyncClient(base_url=url, trust_env=False) as client:

            async def raw_json() -> None:
                (await client.post("/v1/responses", json=BODY)).raise_for_status()

            async def raw_stream() -> None:
                body = {**BODY, "stream": True}
                async with client.stream("POST", "/v1/responses", json=body) as response:
                    async for _ in response.aiter_bytes():
                        pass

            providers = {
                api: OpenAIProvider(api, base_url=f"{url}/v1", api_key="bench")
                for api in ("responses", "chat")
            }
            request = ModelRequest(model="stub-model", messages=(Message("user", PROMPT),))

            def through_request(
                provider: OpenAIProvider, request: ModelRequest
            ) -> Callable[[], Awaitable[None]]:
                async def call() -> None:
                    async with aclosing(provider.stream(request)) as chunks:
                        async for _ in chunks:
                            pass

                return call

            def through(provider: OpenAIProvider) -> Callable[[], Awaitable[None]]:
                return through_request(provider, request)

            results = {
                "raw httpx, JSON": await timed(raw_json, requests),
                "raw httpx, SSE stream": await timed(raw_stream, requests),
                "OpenAIProvider responses (SDK, stream)": await timed(
                    through(providers["responses"]), requests
                ),
                "OpenAIProvider chat (SDK, stream)": await timed(
                    through(providers["chat"]), requests
                ),
            }
            history = tuple(
                Message("user" if index % 2 == 0 else "assistant", f"turn {index}: {PROMPT}")
                for index in range(200)
            )
            long_body = responses_params(
                ModelRequest(model="stub-model", messages=history), store=False
            )
            sdk = providers["responses"].client

            async def typed_create() -> None:
                async for _ in await sdk.responses.create(**long_body, stream=True):
                    pass

            long_request = ModelRequest(model="stub-model", messages=history)
            provider_long = through_request(providers["responses"], long_request)

            history_count = max(20, requests // 10)
            long_history = {
                "200 msgs: SDK responses.create(**params)": await timed(
                    typed_create, history_count
                ),
                "200 msgs: OpenAIProvider responses": await timed(provider_long, history_count),
            }
            for provider in providers.values():
                await provider.aclose()

            limits = httpx.Limits(max_connections=concurrency)
            async with httpx.AsyncClient(base_url=url, trust_env=False, limits=limits) as loaded:
                semaphore = asyncio.Semaphore(concurrency)

                async def one() -> None:
                    async with semaphore:
                        (await loaded.post("/v1/responses", json=BODY)).raise_for_status()

                total = requests * 4
                cpu_before = process_cpu_seconds(process.pid)
                started = time.perf_counter()
                await asyncio.gather(*(one() for _ in range(total)))
                throughput = total / (time.perf_counter() - started)
                stub_cpu_ms = (process_cpu_seconds(process.pid) - cpu_before) / total * 1000
    finally:
        process.terminate()
        process.wait(timeout=10)

    baseline = statistics.median(results["raw httpx, SSE stream"])
    print(f"{requests} sequential calls each, stub in its own process, loopback")
    print(f"{'client':42} {'p50 ms':>8} {'p99 ms':>8} {'p50 vs raw SSE':>15}")
    for name, samples in results.items():
        p50 = statistics.median(samples)
        print(f"{name:42} {p50:8.2f} {percentile(samples, 0.99):8.2f} {p50 / baseline:14.2f}x")
    print(
        f"{concurrency} in flight (raw httpx, JSON): {throughput:.0f} requests/s; "
        f"stub CPU {stub_cpu_ms:.2f} ms per request (~{1000 / stub_cpu_ms:.0f} requests/s per core)"
    )
    typed, generic = (statistics.median(samples) for samples in long_history.values())
    for name, samples in long_history.items():
        print(f"{name:42} {statistics.median(samples):8.2f} {percentile(samples, 0.99):8.2f}")
    print(f"SDK typed create / OpenAIProvider with a 200-message history: {typed / generic:.1f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=32)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.requests, arguments.concurrency))
