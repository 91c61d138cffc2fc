"""The Redis event log between processes: two store objects stand for two API nodes."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio

from mezzo.protocol import Event, NewEvent
from mezzo.store.redis import RedisStore

URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
async def nodes() -> AsyncIterator[tuple[RedisStore, RedisStore]]:
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    a, b = RedisStore(URL, prefix=prefix), RedisStore(URL, prefix=prefix)
    await a.open()
    await b.open()
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()
        admin = redis.asyncio.Redis.from_url(URL)
        keys = [k async for k in admin.scan_iter(match=f"{prefix}:*")]
        if keys:
            await admin.delete(*keys)
        await admin.aclose()


async def _collect(store: RedisStore, n: int, **filters: object) -> list[Event]:
    seen: list[Event] = []
    async for event in store.tail("ws", **filters):  # type: ignore[arg-type]
        seen.append(event)
        if len(seen) == n:
            break
    return seen


async def test_a_tail_on_one_node_sees_what_another_node_appends(
    nodes: tuple[RedisStore, RedisStore],
) -> None:
    a, b = nodes
    await a.append("ws", "r1", [NewEvent(type="run_queued")], 0)
    wanted = ["run_queued", "completed"]
    tailer = asyncio.create_task(_collect(b, 4, after_seq=0, types=wanted))
    await asyncio.sleep(0.1)
    await a.append("ws", "r1", [NewEvent(type="run_started")], 1)
    await a.append("ws", "r2", [NewEvent(type="run_queued")], 0)
    await a.append("ws", "r1", [NewEvent(type="model_call"), NewEvent(type="completed")], 2)
    await a.append("ws", "r2", [NewEvent(type="completed")], 1)
    seen = await asyncio.wait_for(tailer, 10)
    assert [(e.seq, e.run, e.type) for e in seen] == [
        (1, "r1", "run_queued"),
        (3, "r2", "run_queued"),
        (5, "r1", "completed"),
        (6, "r2", "completed"),
    ]


async def test_many_tailers_of_one_workspace_share_one_blocking_reader(
    nodes: tuple[RedisStore, RedisStore],
) -> None:
    a, b = nodes
    tailers = [asyncio.create_task(_collect(b, 30)) for _ in range(200)]
    readers = await _tail_connections(b, until=lambda cs: any(_blocked(c) for c in cs))
    for i in range(30):
        await a.append("ws", f"r{i}", [NewEvent(type="run_queued", data={"i": i})], 0)
    results = await asyncio.wait_for(asyncio.gather(*tailers), 20)
    for seen in results:
        assert [e.seq for e in seen] == list(range(1, 31))
        assert [e.data["i"] for e in seen] == list(range(30))
    # 200 subscribers of the workspace, one connection blocked in XREAD for all of them.
    assert [c["cmd"] for c in readers if _blocked(c)] == ["xread"]
    # Once the last subscriber is gone, so is the reader: nothing stays blocked in XREAD.
    left = await _tail_connections(b, until=lambda cs: not any(_blocked(c) for c in cs))
    assert not any(_blocked(c) for c in left)


def _blocked(client: dict[str, str]) -> bool:
    return "b" in client.get("flags", "")


async def _tail_connections(
    store: RedisStore, until: Callable[[list[dict[str, str]]], bool]
) -> list[dict[str, str]]:
    """The store's tail connections as the server lists them, once `until` holds (≤ 10 s)."""
    admin = redis.asyncio.Redis.from_url(URL, decode_responses=True)
    try:
        for _ in range(200):
            clients = await admin.client_list()
            found = [c for c in clients if c.get("name") == f"{store.prefix}-tail"]
            if until(found):
                break
            await asyncio.sleep(0.05)
    finally:
        await admin.aclose()
    return found


async def test_a_tail_of_one_run_skips_the_other_runs(nodes: tuple[RedisStore, RedisStore]) -> None:
    a, b = nodes
    tailer = asyncio.create_task(_collect(b, 3, run="r2"))
    for i in range(20):
        await a.append("ws", f"r{i}", [NewEvent(type="run_queued")], 0)
    await a.append("ws", "r2", [NewEvent(type="run_started"), NewEvent(type="completed")], 1)
    seen = await asyncio.wait_for(tailer, 10)
    assert [(e.run, e.type) for e in seen] == [
        ("r2", "run_queued"),
        ("r2", "run_started"),
        ("r2", "completed"),
    ]


async def test_live_events_cross_nodes(nodes: tuple[RedisStore, RedisStore]) -> None:
    a, b = nodes

    async def first() -> Event:
        async for event in b.live("ws"):
            return event
        raise AssertionError("live ended")

    listener = asyncio.create_task(first())
    await asyncio.sleep(0.2)
    delta = Event(seq=None, workspace="ws", run="r1", type="delta", ts=time.time(), data={"t": "x"})
    await a.publish_live(delta)
    assert (await asyncio.wait_for(listener, 5)) == delta


async def test_cancelling_a_caller_mid_command_always_cancels_it(
    nodes: tuple[RedisStore, RedisStore],
) -> None:
    """A watcher stopped with `cancel(); await` must stop (redis-py 8.1 can swallow the cancel)."""
    a, _ = nodes
    await a.append("ws", "r1", [NewEvent(type="run_queued")], 0)

    async def watch() -> None:
        while True:
            await asyncio.sleep(0)
            await a.run_version("r1")

    chance = random.Random(7)
    for _ in range(150):
        watcher = asyncio.create_task(watch())
        await asyncio.sleep(chance.random() * 0.002)
        watcher.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(watcher, 5)
