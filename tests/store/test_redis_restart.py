"""Redis killed (SIGKILL) and restarted under load with `appendfsync always`: everything the
store acknowledged is still there, seqs stay gap-free, and a tail that resumes from its last
seq sees every event exactly once."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from redis_process import RedisProcess

from mezzo.protocol import Event, NewEvent
from mezzo.store.base import StoreUnavailable, VersionConflict
from mezzo.store.redis import RedisStore

RUNS = 240
KILL_AFTER = 80


async def _accept(store: RedisStore, run: str, outages: list[str] | None = None) -> None:
    """What ingestion does for one run: log run_queued, enqueue its job. Retried until both
    are acknowledged; a retry after an append that did land meets a VersionConflict."""
    while True:
        try:
            with contextlib.suppress(VersionConflict):
                await store.append("ws", run, [NewEvent(type="run_queued", data={"run": run})], 0)
            await store.enqueue("q", run, {"run": run})
            return
        except StoreUnavailable:
            if outages is not None:
                outages.append(run)
            await asyncio.sleep(0.05)


async def _follow(store: RedisStore, seen: list[Event], until: int) -> None:
    """A subscriber that resubscribes from its last seq whenever the store goes away."""
    while len(seen) < until:
        last = seen[-1].seq or 0 if seen else 0
        try:
            async for event in store.tail("ws", after_seq=last):
                seen.append(event)
                if len(seen) >= until:
                    return
        except StoreUnavailable:
            await asyncio.sleep(0.05)


async def test_nothing_acknowledged_is_lost_across_a_restart(tmp_path: Path) -> None:
    server = RedisProcess(tmp_path, "--appendonly", "yes", "--appendfsync", "always").start()
    store = RedisStore(server.url, prefix="restart")
    await store.open()
    seen: list[Event] = []
    follower = asyncio.create_task(_follow(store, seen, RUNS))
    try:
        for i in range(KILL_AFTER):
            await _accept(store, f"r{i}")
        outages: list[str] = []
        rest = asyncio.create_task(_accept_many(store, range(KILL_AFTER, RUNS), outages))
        await asyncio.sleep(0.01)
        server.kill()
        await asyncio.sleep(1.0)  # longer than the client's own reconnect retries
        server.start()
        await asyncio.wait_for(rest, 60)
        await asyncio.wait_for(follower, 60)
        assert outages, "the kill did not land while runs were being accepted"

        events = await store.read("ws", limit=10_000)
        assert [e.seq for e in events] == list(range(1, RUNS + 1))
        assert sorted(e.run or "" for e in events) == sorted(f"r{i}" for i in range(RUNS))
        assert [e.seq for e in seen] == [e.seq for e in events]

        leased = await store.lease("q", "w1", RUNS + 10, 30)
        assert sorted(job.id for job in leased) == sorted(f"r{i}" for i in range(RUNS))
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
        await store.close()
        server.kill()


async def _accept_many(store: RedisStore, indexes: range, outages: list[str]) -> None:
    for i in indexes:
        await _accept(store, f"r{i}", outages)


async def test_a_fresh_store_object_reads_what_survived_a_kill(tmp_path: Path) -> None:
    with RedisProcess(tmp_path, "--appendonly", "yes", "--appendfsync", "always") as server:
        async with RedisStore(server.url, prefix="again") as store:
            await store.append("ws", "r1", [NewEvent(type="run_queued")], 0)
            await store.ledger_init("ws", 1000)
            reservation = await store.reserve("ws", "a", 1, 400)
            assert reservation is not None
            await store.commit("ws", "a", 300, [0.25])
            await store.enqueue("q", "r1", {"n": 1}, priority=2)
        server.kill()
        server.start()
        async with RedisStore(server.url, prefix="again") as store:
            assert await store.run_version("r1") == 1
            state = await store.ledger_get("ws")
            assert (state.committed, state.reserved, state.alerts_fired) == (300, 0, [0.25])
            assert (await store.commit("ws", "a", 300, [0.25])).already_committed
            (job,) = await store.lease("q", "w", 1, 30)
            assert (job.id, job.priority, job.payload) == ("r1", 2, {"n": 1})
