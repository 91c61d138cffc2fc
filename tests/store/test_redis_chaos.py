"""Chaos at CI size: SIGKILL a random worker process every 1.5 s while runs go through, on
Redis and on SQLite shared by several worker processes. Every accepted run completes, and no
step's effect is doubled (one `model_result` per run and step, seqs gap-free).

The issue's full size (1,000 runs, a kill every 2 s for as long as they take) is this test with
RUNS, KILL_EVERY_S and KILLS changed; it takes many minutes on two cores, so CI runs this one.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis_process import RedisProcess

from core_support import ServeProcess, free_port, process_env
from mezzo.stub.server import StubServer

RUNS = 24
WORKERS = 3
KILL_EVERY_S = 1.5
KILLS = 3  # then the survivors finish; a restarted worker takes a while to import on 2 cores


def events(url: str, ws: str) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{url}/v1/workspaces/{ws}/events", params={"limit": 10000}, trust_env=False, timeout=30
    )
    response.raise_for_status()
    return list(response.json())


@pytest.mark.parametrize("backend", ["redis", "sqlite"])
def test_kill_9_of_random_workers_loses_and_doubles_nothing(
    backend: str, tmp_path: Path, stub: StubServer, processes: list[ServeProcess]
) -> None:
    stub.configure(tokens_per_second=20, reply_tokens=40)  # 2 s per model call
    with contextlib.ExitStack() as stack:
        if backend == "redis":
            store = stack.enter_context(RedisProcess(tmp_path / "redis")).url
        else:
            store = f"sqlite:///{tmp_path / 'data' / 'mezzo.sqlite3'}"
        env = process_env(tmp_path / "data", stub)
        port = free_port()
        api = ServeProcess(
            ["serve", "--port", str(port), "--no-workers", "--store", store], env, port
        )
        processes.append(api.start())

        def start_worker() -> ServeProcess:
            worker = ServeProcess(["worker", "--store", store, "--concurrency", "4"], env)
            processes.append(worker.start())
            return worker

        workers = [start_worker() for _ in range(WORKERS)]
        created = httpx.post(f"{api.url}/v1/workspaces", json={"id": "w"}, trust_env=False)
        assert created.status_code == 201, created.text
        accepted = []
        for i in range(RUNS):
            response = httpx.post(
                f"{api.url}/v1/workspaces/w/runs", json={"input": f"job {i}"}, trust_env=False
            )
            assert response.status_code == 202, response.text
            accepted.append(response.json()["run"])

        chance = random.Random(5)
        kills = 0
        deadline = time.monotonic() + 150
        while True:
            log = events(api.url, "w")
            if {e["run"] for e in log if e["type"] == "completed"} == set(accepted):
                break
            assert time.monotonic() < deadline, "runs did not complete under chaos"
            time.sleep(KILL_EVERY_S if kills < KILLS else 0.2)
            if kills >= KILLS:
                continue
            victim = chance.randrange(WORKERS)
            workers[victim].kill()
            kills += 1
            workers[victim] = start_worker()
        for process in processes:
            process.kill()

    assert kills >= 2
    results = Counter((e["run"], e["data"]["step"]) for e in log if e["type"] == "model_result")
    assert results and all(n == 1 for n in results.values()), f"model_result doubled: {results}"
    assert [e["seq"] for e in log] == list(range(1, len(log) + 1))
    outputs = {e["run"]: e["data"]["output"] for e in log if e["type"] == "completed"}
    assert sorted(outputs) == sorted(accepted)
    calls = Counter((e["run"], e["data"]["step"]) for e in log if e["type"] == "model_call")
    assert any(n > 1 for n in calls.values()), "no kill landed while a model call was running"
