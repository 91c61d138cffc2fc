"""Redis killed (SIGKILL) and restarted under load with `appendfsync always`: everything the
store acknowledged is still there, seqs stay gap-free, and a tail that resumes from its last
seq sees every event exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from pathlib import Path

import httpx
from redis_process import RedisProcess

from core_support import ServeProcess, free_port, process_env
from mezzo.protocol import Event, NewEvent
from mezzo.store.base import Hold, StoreUnavailable, VersionConflict
from mezzo.store.redis import RedisStore
from mezzo.stub.server import StubServer

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
            assert (await store.hold("ws", Hold("a", 400, 1))).granted == 400
            await store.settle("ws", "a", 300, [0.25])
            await store.enqueue("q", "r1", {"n": 1}, priority=2)
        server.kill()
        server.start()
        async with RedisStore(server.url, prefix="again") as store:
            assert await store.run_version("r1") == 1
            state = await store.ledger_get("ws")
            assert (state.committed, state.reserved, state.alerts_fired) == (300, 0, [0.25])
            assert (await store.settle("ws", "a", 300, [0.25])).commit.already_committed
            (job,) = await store.lease("q", "w", 1, 30)
            assert (job.id, job.priority, job.payload) == ("r1", 2, {"n": 1})


def test_every_202_completes_across_a_redis_restart_under_load(
    tmp_path: Path, stub: StubServer, processes: list[ServeProcess]
) -> None:
    """`mezzo serve` + 2 workers on Redis (`appendfsync always`); Redis is SIGKILLed while runs
    are being submitted. Submissions during the outage get 503 + retry-after; every run that
    got a 202 completes once Redis is back."""
    stub.configure(tokens_per_second=100, reply_tokens=10)
    server = RedisProcess(tmp_path / "redis", "--appendonly", "yes", "--appendfsync", "always")
    server.start()
    try:
        env = process_env(tmp_path / "data", stub)
        store = ["--store", server.url]
        port = free_port()
        api = ServeProcess(["serve", "--port", str(port), "--no-workers", *store], env, port)
        processes.append(api.start())
        processes.extend(ServeProcess(["worker", *store], env).start() for _ in range(2))
        client = httpx.Client(base_url=api.url, trust_env=False, timeout=30)
        assert client.post("/v1/workspaces", json={"id": "w"}).status_code == 201
        accepted: list[str] = []
        refusals: list[httpx.Response] = []

        def submit(n: int) -> None:
            for i in range(n):
                response = client.post("/v1/workspaces/w/runs", json={"input": f"job {i}"})
                if response.status_code == 202:
                    accepted.append(response.json()["run"])
                else:
                    refusals.append(response)

        submit(15)
        # Workers refuse to start without Redis, so let them come up first.
        for _ in range(300):
            page = client.get("/v1/workspaces/w/events", params={"types": "completed"})
            if page.json():
                break
            time.sleep(0.1)
        server.kill()
        submit(3)
        time.sleep(1.0)
        server.start()
        submit(15)
        deadline = time.monotonic() + 60
        while True:
            page = client.get("/v1/workspaces/w/events", params={"limit": 10000})
            if page.status_code == 200:
                done = {e["run"] for e in page.json() if e["type"] == "completed"}
                if done >= set(accepted):
                    break
            assert time.monotonic() < deadline, f"{len(set(accepted) - done)} accepted runs lost"
            time.sleep(0.2)
        log = page.json()
    finally:
        for process in processes:
            process.kill()
        server.kill()
    assert len(accepted) == 30
    assert [r.status_code for r in refusals] == [503, 503, 503]
    assert all(r.headers.get("retry-after") for r in refusals)
    assert [e["seq"] for e in log] == list(range(1, len(log) + 1))
    results = Counter((e["run"], e["data"]["step"]) for e in log if e["type"] == "model_result")
    assert all(n == 1 for n in results.values())


async def test_live_subscribers_and_idle_workers_hear_again_after_a_restart(tmp_path: Path) -> None:
    server = RedisProcess(tmp_path, "--appendonly", "yes", "--appendfsync", "always").start()
    store = RedisStore(server.url, prefix="pubsub")
    await store.open()
    received: list[Event] = []

    async def listen() -> None:
        async for event in store.live("ws"):
            received.append(event)
            if event.data.get("n") == 2:
                return

    listener = asyncio.create_task(listen())
    try:
        await asyncio.sleep(0.2)
        await store.publish_live(_delta(1))
        await store.wait_for_change(0.5)  # starts the wake-up reader
        server.kill()
        await asyncio.sleep(0.5)
        server.start()
        # Pub/Sub is at most once: publish until the resubscribed listener hears one.
        for _ in range(100):
            await store.publish_live(_delta(2))
            if listener.done():
                break
            await asyncio.sleep(0.1)
        await asyncio.wait_for(listener, 5)
        assert [e.data["n"] for e in received] == [1, 2]

        waiting = asyncio.create_task(store.wait_for_change(30))
        await asyncio.sleep(0.3)
        await store.enqueue("q", "j", {})
        await asyncio.wait_for(waiting, 10)  # woken by the enqueue, not the 30 s timeout
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener
        await store.close()
        server.kill()


def _delta(n: int) -> Event:
    return Event(seq=None, workspace="ws", run="r", type="delta", ts=time.time(), data={"n": n})
