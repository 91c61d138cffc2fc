"""Local route benchmark: the embedded SmolLM2-135M through LocalProvider.

1. Throughput: N runs one at a time (the baseline), then the same N runs all at once (they
   share one loaded model behind one queue); output tokens/s of each and their ratio.
2. Saturated primary: a low-priority run whose primary route (the stub LLM server, its RPM
   bucket emptied) answers 429. Latency when it waits for the primary (honouring retry-after)
   against latency when it is routed to the local model.

    .venv/bin/python bench/local_bench.py [--concurrency 8] [--max-tokens 64] [--rpm 20]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from mezzo.providers.base import Message, ModelRequest, ModelResponse, Provider, ProviderError
from mezzo.providers.local import LocalProvider
from mezzo.providers.openai import OpenAIProvider
from mezzo.stub.config import StubConfig
from mezzo.stub.server import StubServer

TOPICS = ("rivers", "bread", "owls", "trains", "tea", "glaciers", "bees", "lighthouses")


def request(topic: str, max_tokens: int, model: str = "local") -> ModelRequest:
    text = f"Write a short paragraph about {topic}."
    return ModelRequest(
        model=model, messages=(Message("user", text),), max_output_tokens=max_tokens, temperature=0
    )


async def timed(provider: Provider, req: ModelRequest) -> tuple[float, ModelResponse]:
    start = time.perf_counter()
    async for chunk in provider.stream(req):
        if isinstance(chunk, ModelResponse):
            return time.perf_counter() - start, chunk
    raise RuntimeError("no response")


async def throughput(
    provider: LocalProvider, runs: int, concurrency: int, max_tokens: int
) -> dict[str, float]:
    """`runs` requests, `concurrency` of them in flight at a time."""
    reqs = [request(TOPICS[i % len(TOPICS)], max_tokens) for i in range(runs)]
    gate = asyncio.Semaphore(concurrency)

    async def one(req: ModelRequest) -> tuple[float, ModelResponse]:
        async with gate:
            return await timed(provider, req)

    start, cpu_start = time.perf_counter(), time.process_time()
    results = await asyncio.gather(*(one(r) for r in reqs))
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    tokens = sum(r.usage.output_tokens for _, r in results if r.usage)
    latencies = [latency for latency, _ in results]
    return {
        "tokens": tokens,
        "wall_s": wall,
        "tok_s": tokens / wall,
        # CPU time of this process per token: insensitive to other load on a shared machine.
        "cpu_ms_per_token": 1000 * cpu / tokens,
        "p50_s": statistics.median(latencies),
        "max_s": max(latencies),
    }


async def wait_for_primary(primary: OpenAIProvider, req: ModelRequest) -> tuple[float, int]:
    """Latency of a run that waits for the primary, retrying after each 429."""
    start = time.perf_counter()
    refusals = 0
    while True:
        try:
            async for chunk in primary.stream(req):
                if isinstance(chunk, ModelResponse):
                    return time.perf_counter() - start, refusals
        except ProviderError as error:
            if error.status != 429:
                raise
            refusals += 1
            await asyncio.sleep(error.retry_after or 1.0)


async def saturated_primary(local: LocalProvider, rpm: int, max_tokens: int) -> dict[str, float]:
    config = StubConfig(rpm=rpm, latency_ms=200, reply_tokens=max_tokens)
    with StubServer(config) as stub:
        primary = OpenAIProvider("chat", base_url=stub.base_url, api_key="bench")
        try:
            # Normal-priority work has just spent the primary's whole RPM bucket.
            await asyncio.gather(
                *(
                    timed(primary, request(TOPICS[i % len(TOPICS)], 8, "stub-model"))
                    for i in range(rpm)
                )
            )
            waited, refusals = await wait_for_primary(
                primary, request("owls", max_tokens, "stub-model")
            )
            routed, _ = await timed(local, request("owls", max_tokens))
        finally:
            await primary.aclose()
    return {"wait_s": waited, "refusals": refusals, "routed_s": routed}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--rpm", type=int, default=20)
    args = parser.parse_args()

    local = LocalProvider()
    start = time.perf_counter()
    await local.load()
    print(f"model {local.model} loaded in {time.perf_counter() - start:.2f}s")
    await timed(local, request("warm-up", 4))

    runs = args.concurrency
    one = await throughput(local, runs, 1, args.max_tokens)
    many = await throughput(local, runs, args.concurrency, args.max_tokens)
    for n, row in ((1, one), (args.concurrency, many)):
        print(
            f"{runs} runs, concurrency {n}: {row['tokens']:.0f} tokens in {row['wall_s']:.2f}s = "
            f"{row['tok_s']:.1f} tok/s "
            f"({row['cpu_ms_per_token']:.1f} CPU-ms/token); latency p50 {row['p50_s']:.2f}s max {row['max_s']:.2f}s"
        )
    print(f"throughput ratio {args.concurrency}/1: {many['tok_s'] / one['tok_s']:.2f}x")

    routing = await saturated_primary(local, args.rpm, args.max_tokens)
    print(
        f"saturated primary (rpm={args.rpm}): waiting for it {routing['wait_s']:.2f}s "
        f"({routing['refusals']:.0f} x 429), routed to local {routing['routed_s']:.2f}s; "
        f"routing is {routing['wait_s'] / routing['routed_s']:.1f}x faster"
    )


if __name__ == "__main__":
    asyncio.run(main())
