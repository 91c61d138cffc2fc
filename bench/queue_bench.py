"""Queue throughput on one Redis: mezzo's Redis store vs arq, empty jobs, same run.

Each side enqueues N empty jobs from `--producers` concurrent coroutines, then drains them with
`--slots` jobs in flight (mezzo: that many worker coroutines, each lease → ack, one job at a
time, and once more leasing up to 10 per call; arq: one burst `Worker` with `max_jobs=slots`,
`poll_delay=0`, no result kept). Prints jobs/s per phase and mezzo ÷ arq.

    .venv/bin/python bench/queue_bench.py [--jobs 5000] [--slots 10] [--producers 32] \
        [--url redis://127.0.0.1:6379/0]

arq is a bench-only dependency: `pip install -e '.[bench]'`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from arq.connections import RedisSettings, create_pool
from arq.worker import Worker

from mezzo.store.redis import RedisStore


async def _spread(total: int, concurrency: int, one: Callable[[int], Awaitable[Any]]) -> None:
    next_index = 0

    async def loop() -> None:
        nonlocal next_index
        while next_index < total:
            index = next_index
            next_index += 1
            await one(index)

    await asyncio.gather(*(loop() for _ in range(concurrency)))


async def mezzo_run(
    url: str, jobs: int, slots: int, producers: int, batch: int
) -> dict[str, float]:
    store = RedisStore(url, prefix=f"bench-{uuid.uuid4().hex[:8]}")
    await store.open()
    queue = "bench"
    try:
        started = time.perf_counter()
        await _spread(jobs, producers, lambda i: store.enqueue(queue, f"job-{i}", {}))
        enqueued = time.perf_counter()
        done = 0

        async def worker(name: str) -> None:
            nonlocal done
            while done < jobs:
                leased = await store.lease(queue, name, batch, 30)
                if not leased:
                    if done >= jobs:
                        return
                    await asyncio.sleep(0)
                    continue
                for job in leased:
                    await store.ack(job)
                done += len(leased)

        await asyncio.gather(*(worker(f"w{i}") for i in range(slots)))
        finished = time.perf_counter()
        assert await store.queue_depth(queue) == {}, "jobs left behind"
    finally:
        client = store._client
        if client is not None:
            keys = [k async for k in client.scan_iter(match=f"{store.prefix}:*")]
            if keys:
                await client.delete(*keys)
        await store.close()
    return {"enqueue": jobs / (enqueued - started), "process": jobs / (finished - enqueued)}


async def noop(ctx: dict[str, Any]) -> None:
    return None


async def arq_run(url: str, jobs: int, slots: int, producers: int) -> dict[str, float]:
    parts = urlsplit(url)
    settings = RedisSettings(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 6379,
        database=int(parts.path.strip("/") or 0),
    )
    queue = f"arq:bench:{uuid.uuid4().hex[:8]}"
    pool = await create_pool(settings, default_queue_name=queue)
    try:
        started = time.perf_counter()
        await _spread(jobs, producers, lambda i: pool.enqueue_job("noop", _queue_name=queue))
        enqueued = time.perf_counter()
        worker = Worker(
            [noop],
            queue_name=queue,
            redis_pool=pool,
            burst=True,
            max_jobs=slots,
            poll_delay=0,
            keep_result=0,
            handle_signals=False,
            log_results=False,
        )
        await worker.main()
        finished = time.perf_counter()
        assert worker.jobs_complete == jobs, f"arq completed {worker.jobs_complete} of {jobs}"
        await worker.close()
    finally:
        await pool.delete(queue)
        await pool.aclose()
    return {"enqueue": jobs / (enqueued - started), "process": jobs / (finished - enqueued)}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--slots", type=int, default=10)
    parser.add_argument("--producers", type=int, default=32)
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    logging.getLogger("arq").setLevel(logging.WARNING)

    arq = await arq_run(args.url, args.jobs, args.slots, args.producers)
    one = await mezzo_run(args.url, args.jobs, args.slots, args.producers, batch=1)
    batched = await mezzo_run(args.url, args.jobs, args.slots, args.producers, batch=10)

    print(f"{args.jobs} empty jobs, {args.producers} producers, {args.slots} in flight, {args.url}")
    print(f"{'':28}{'enqueue/s':>12}{'lease+ack/s':>14}{'vs arq':>10}")
    print(f"{'arq':28}{arq['enqueue']:>12.0f}{arq['process']:>14.0f}{'1.00x':>10}")
    for label, figures in (("mezzo, lease 1 at a time", one), ("mezzo, lease up to 10", batched)):
        ratio = figures["process"] / arq["process"]
        print(f"{label:28}{figures['enqueue']:>12.0f}{figures['process']:>14.0f}{ratio:>9.2f}x")
    print(f"enqueue, mezzo ÷ arq: {one['enqueue'] / arq['enqueue']:.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
