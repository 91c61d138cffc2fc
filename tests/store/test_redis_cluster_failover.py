"""A primary of a real Redis Cluster SIGKILLed under load: its replica is promoted, `mezzo serve`
and two `mezzo worker` processes find the new primary by themselves, and every run that got a
`202` completes exactly once (no doubled `model_result`).

The cluster is this test's own (it loses a node). mezzo runs with `durability=replicated`, so
each `202` waited for a replica; while the promoted replica has none, submissions to its slots
get `503`, and the client retries them with the same Idempotency-Key, as a client should, until
the killed node is back as a replica.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import httpx
from redis_cluster import RedisClusterProcess

from core_support import ServeProcess, free_port, process_env
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
