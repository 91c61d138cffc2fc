"""A primary of a real Redis Cluster SIGKILLed under load: its replica is promoted, `mezzo serve`
and two `mezzo worker` processes find the new primary by themselves, and every run that got a
`202` completes exactly once (no doubled `model_result`).

The cluster is this test's own (it loses a node). mezzo runs with `durability=replicated`, so
each `202` waited for a replica; while the promoted replica has none, submissions to its slots
get `503`, and the client retries them with the same Idempotency-Key, as a client should, until
the killed node is back as a replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import redis
from redis_cluster import RedisClusterProcess
from redis_process import RedisProcess

from core_support import ServeProcess, free_port, process_env
from mezzo.protocol import Event
from mezzo.store.base import StoreUnavailable
from mezzo.store.redis import RedisStore
from mezzo.stub.server import StubServer

WORKSPACES = 4
RUNS = 60


def test_every_202_completes_once_across_a_primary_failover(
    tmp_path: Path, stub: StubServer, processes: list[ServeProcess]
) -> None:
    stub.configure(tokens_per_second=200, reply_tokens=10)
    cluster = RedisClusterProcess(tmp_path / "cluster").start()
    try:
        env = process_env(tmp_path / "data", stub)
        store = ["--store", f"{cluster.url}?durability=replicated&replica_wait_ms=500"]
        port = free_port()
        api = ServeProcess(["serve", "--port", str(port), "--no-workers", *store], env, port)
        processes.append(api.start())
        processes.extend(ServeProcess(["worker", *store], env).start() for _ in range(2))
        client = httpx.Client(base_url=api.url, trust_env=False, timeout=30)
        for w in range(WORKSPACES):
            assert client.post("/v1/workspaces", json={"id": f"w{w}"}).status_code == 201
        accepted: dict[str, str] = {}  # run -> workspace
        refused: list[int] = []

        def submit(indexes: range) -> None:
            for i in indexes:
                workspace = f"w{i % WORKSPACES}"
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    try:
                        response = client.post(
                            f"/v1/workspaces/{workspace}/runs",
                            json={"input": f"job {i}"},
                            headers={"idempotency-key": f"job-{i}"},
                        )
                    except httpx.HTTPError:
                        response = None
                    if response is not None and response.status_code == 202:
                        accepted[response.json()["run"]] = workspace
                        time.sleep(0.05)  # a steady load, across the failover
                        break
                    if response is not None:
                        assert response.status_code == 503, response.text
                        assert response.headers.get("retry-after")
                        refused.append(i)
                    time.sleep(0.2)

        submit(range(10))
        _wait_for_completions(client, accepted, 1)
        loader = threading.Thread(target=submit, args=(range(10, RUNS),))
        loader.start()
        time.sleep(0.3)
        victim = cluster.primary_of("mezzo:{kv}:values")
        victim.kill()
        deadline = time.monotonic() + 30
        while cluster.primary_of("mezzo:{kv}:values").port == victim.port:
            assert time.monotonic() < deadline, "no replica was promoted"
            time.sleep(0.1)
        victim.start()  # rejoins as a replica of the promoted one
        cluster.wait_ok()
        loader.join(120)
        assert not loader.is_alive()
        logs = _wait_for_completions(client, accepted, len(accepted))
    finally:
        for process in processes:
            process.kill()
        cluster.stop()
    assert len(accepted) == RUNS
    assert refused, "the failover happened while no submission was in flight"
    for log in logs.values():
        assert [e["seq"] for e in log] == list(range(1, len(log) + 1))
        results = Counter((e["run"], e["data"]["step"]) for e in log if e["type"] == "model_result")
        assert all(n == 1 for n in results.values()), results
        completed = Counter(e["run"] for e in log if e["type"] == "completed")
        assert all(n == 1 for n in completed.values()), completed


def _wait_for_completions(
    client: httpx.Client, accepted: dict[str, str], at_least: int
) -> dict[str, list[dict[str, object]]]:
    """Every workspace's log once `at_least` runs, and every accepted one, have completed."""
    deadline = time.monotonic() + 90
    while True:
        logs: dict[str, list[dict[str, object]]] = {}
        for w in range(WORKSPACES):
            page = client.get(f"/v1/workspaces/w{w}/events", params={"limit": 10000})
            if page.status_code == 200:
                logs[f"w{w}"] = page.json()
        done = {e["run"] for log in logs.values() for e in log if e["type"] == "completed"}
        if len(logs) == WORKSPACES and len(done) >= at_least and done >= set(accepted):
            return logs
        missing = len(set(accepted) - done)
        assert time.monotonic() < deadline, f"{missing} accepted runs did not complete"
        time.sleep(0.2)


async def test_live_subscribers_and_idle_workers_hear_again_when_their_node_dies(
    tmp_path: Path,
) -> None:
    """The node holding this process's Pub/Sub connection for live deltas is SIGKILLed: the
    relay reconnects to another node and subscribes again, and queue wake-ups go on."""
    cluster = RedisClusterProcess(tmp_path / "cluster").start()
    store = RedisStore(cluster.url, prefix="live")
    await store.open()
    received: list[int] = []

    async def listen() -> None:
        async for event in store.live("ws"):
            received.append(int(event.data["n"]))
            if event.data["n"] == 2:
                return

    listener = asyncio.create_task(listen())
    try:
        await asyncio.sleep(0.3)
        await store.publish_live(_delta(1))
        await store.wait_for_change(0.5)  # starts the wake-up reader
        _subscribed_node(cluster, "live-pubsub", "sub=1").kill()
        # Pub/Sub is at most once: publish until the resubscribed listener hears one (the
        # publisher too may have to find a live node first).
        for _ in range(300):
            with contextlib.suppress(StoreUnavailable):
                await store.publish_live(_delta(2))
            if listener.done():
                break
            await asyncio.sleep(0.1)
        await asyncio.wait_for(listener, 5)
        assert received == [1, 2]

        waiting = asyncio.create_task(store.wait_for_change(60))
        await asyncio.sleep(0.5)
        for _ in range(300):
            with contextlib.suppress(StoreUnavailable):
                await store.enqueue("q", "j", {})
                break
            await asyncio.sleep(0.1)
        await asyncio.wait_for(waiting, 30)  # woken by the enqueue, not the 60 s timeout
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener
        await store.close()
        cluster.stop()


def _subscribed_node(cluster: RedisClusterProcess, name: str, flag: str) -> RedisProcess:
    """The node where a client named `name` holds a subscription (`sub=1`, `psub=1`)."""
    for node in cluster.nodes:
        client = redis.Redis(port=node.port, decode_responses=True)
        try:
            clients = client.client_list()
        finally:
            client.close()
        field, value = flag.split("=")
        if any(e.get("name") == name and e.get(field) == value for e in clients):
            return node
    raise AssertionError(f"no node has a client {name} with {flag}")


def _delta(n: int) -> Event:
    return Event(seq=None, workspace="ws", run="r", type="delta", ts=time.time(), data={"n": n})
