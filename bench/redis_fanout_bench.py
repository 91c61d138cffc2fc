"""Fan-out of durable events to many tail subscribers of one workspace, at the store level.

One process holds `--subscribers` `RedisStore.tail()` iterators on one workspace (what an API
node holds behind its WebSockets); a second `RedisStore` (another node) appends `--events`
events, one every `--interval` s, each stamped with `time.time()`. Prints delivery latency
(append → every subscriber has it) percentiles, Redis connections used by the tails, and memory
per subscriber (RSS growth ÷ subscribers). The baseline in the same run is the SQLite store
with the same subscribers (one process, in-memory notification).

    .venv/bin/python bench/redis_fanout_bench.py [--subscribers 10000] [--events 50]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import redis.asyncio

from mezzo.protocol import NewEvent
from mezzo.store.base import Store
from mezzo.store.redis import RedisStore
from mezzo.store.sqlite import SQLiteStore


def rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / 2**20


async def fan_out(
    reader: Store,
    writer: Store,
    subscribers: int,
    events: int,
    interval: float,
    count_connections: Callable[[], Awaitable[int]] | None = None,
) -> dict[str, float]:
    latencies: list[float] = []
    ready = asyncio.Event()
    joined = 0

    async def subscribe() -> None:
        nonlocal joined
        stream = reader.tail("ws", after_seq=0).__aiter__()
        first = asyncio.ensure_future(stream.__anext__())
        joined += 1
        if joined == subscribers:
            ready.set()
        event = await first
        seen = 1
        while True:
            latencies.append(time.time() - float(event.data["sent"]))
            if seen == events:
                return
            event = await stream.__anext__()
            seen += 1

    before = rss_mib()
    tasks = [asyncio.create_task(subscribe()) for _ in range(subscribers)]
    await ready.wait()
    await asyncio.sleep(1.0)
    after = rss_mib()
    connections = await count_connections() if count_connections else 0
    started = time.perf_counter()
    for i in range(events):
        await writer.append(
            "ws", None, [NewEvent(type="throttled", data={"sent": time.time(), "i": i})], None
        )
        await asyncio.sleep(interval)
    await asyncio.wait_for(asyncio.gather(*tasks), 120)
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
        "max_ms": 1000 * latencies[-1],
        "mean_ms": 1000 * statistics.fmean(latencies),
        "kib_per_sub": (after - before) * 1024 / subscribers,
        "deliveries_per_s": len(latencies) / elapsed,
        "connections": connections,
    }


async def tail_connections(url: str, prefix: str) -> int:
    admin = redis.asyncio.Redis.from_url(url, decode_responses=True)
    try:
        return sum(1 for c in await admin.client_list() if c.get("name") == f"{prefix}-tail")
    finally:
        await admin.aclose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=50)
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()

    prefix = f"fanout-{uuid.uuid4().hex[:8]}"
    reader, writer = RedisStore(args.url, prefix=prefix), RedisStore(args.url, prefix=prefix)
    await reader.open()
    await writer.open()
    try:
        on_redis = await fan_out(
            reader,
            writer,
            args.subscribers,
            args.events,
            args.interval,
            lambda: tail_connections(args.url, prefix),
        )
    finally:
        client = writer._client
        if client is not None:
            keys = [k async for k in client.scan_iter(match=f"{prefix}:*")]
            if keys:
                await client.delete(*keys)
        await reader.close()
        await writer.close()

    with tempfile.TemporaryDirectory() as folder:
        sqlite = SQLiteStore(Path(folder) / "fanout.sqlite3", synchronous="NORMAL")
        await sqlite.open()
        try:
            on_sqlite = await fan_out(sqlite, sqlite, args.subscribers, args.events, args.interval)
        finally:
            await sqlite.close()

    print(
        f"{args.subscribers} tail subscribers of one workspace, {args.events} events, one per {args.interval}s"
    )
    print(f"{'':26}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'KiB/sub':>10}{'deliveries/s':>14}")
    for label, r in (("redis (2 store objects)", on_redis), ("sqlite (one process)", on_sqlite)):
        print(
            f"{label:26}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}{r['max_ms']:>9.1f}"
            f"{r['kib_per_sub']:>10.1f}{r['deliveries_per_s']:>14.0f}"
        )
    print(f"redis connections held by the {args.subscribers} tails: {on_redis['connections']:.0f}")
    print(f"p99, redis ÷ sqlite: {on_redis['p99_ms'] / on_sqlite['p99_ms']:.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
