"""An Idempotency-Key names one run: a retry returns it and writes nothing, even after the run
finished or its events were compacted; another input with the same key is a 409."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core_support import ServerThread, core_settings
from mezzo.config import Settings
from mezzo.keys import RUN_QUEUE
from mezzo.stub.server import StubServer
from store.redis_process import RedisProcess


def wait_completed(client: httpx.Client, run: str) -> None:
    deadline = time.monotonic() + 20
    while client.get(f"/v1/runs/{run}").json()["status"] != "completed":
        assert time.monotonic() < deadline, f"run {run} did not complete"
        time.sleep(0.05)


def test_a_retry_after_the_run_ended_and_was_compacted_writes_nothing(
    tmp_path: Path, stub: StubServer
) -> None:
    settings = core_settings(tmp_path / "data", stub, retain_events=4)
    with (
        ServerThread(settings) as server,
        httpx.Client(base_url=server.url, trust_env=False) as client,
    ):
        assert client.post("/v1/workspaces", json={"id": "w"}).status_code == 201
        key = {"idempotency-key": "order-17"}
        first = client.post("/v1/workspaces/w/runs", json={"input": "a"}, headers=key)
        assert first.status_code == 202
        run = first.json()["run"]
        wait_completed(client, run)
        for i in range(3):  # newer runs push the first one's events out of the log
            wait_completed(
                client, client.post("/v1/workspaces/w/runs", json={"input": f"x{i}"}).json()["run"]
            )
        log = client.get("/v1/workspaces/w/events").json()
        assert all(e["run"] != run for e in log)
        head = client.get("/v1/workspaces/w").json()["head_seq"]

        again = client.post("/v1/workspaces/w/runs", json={"input": "a"}, headers=key)
        assert again.status_code == 202 and again.json()["run"] == run
        other = client.post("/v1/workspaces/w/runs", json={"input": "b"}, headers=key)
        assert other.status_code == 409 and "different request body" in other.json()["error"]

        assert client.get("/v1/workspaces/w").json()["head_seq"] == head
        assert client.get(f"/v1/runs/{run}").json()["status"] == "completed"
        depth = server.call(server.mezzo.store.queue_depth(RUN_QUEUE))
        assert sum(depth.values()) == 0


def test_the_same_key_in_another_workspace_is_another_run(tmp_path: Path, stub: StubServer) -> None:
    with (
        ServerThread(core_settings(tmp_path / "data", stub), workers=False) as server,
        httpx.Client(base_url=server.url, trust_env=False) as client,
    ):
        for workspace in ("w1", "w2"):
            assert client.post("/v1/workspaces", json={"id": workspace}).status_code == 201
        key = {"idempotency-key": "same"}
        runs = {
            client.post(f"/v1/workspaces/{ws}/runs", json={"input": "a"}, headers=key).json()["run"]
            for ws in ("w1", "w2", "w1")
        }
        assert len(runs) == 2


@pytest.fixture(params=["sqlite", "redis"])
def either_store(
    request: pytest.FixtureRequest, tmp_path: Path, stub: StubServer
) -> Iterator[Settings]:
    if request.param == "sqlite":
        yield core_settings(tmp_path / "data", stub)
        return
    with RedisProcess(tmp_path / "redis") as redis_server:
        yield core_settings(tmp_path / "data", stub, store=redis_server.url)


def test_a_retry_after_the_run_ended_does_not_bring_it_back(either_store: Settings) -> None:
    """Retried after the run finished, by a server that never saw the run (a restart): the
    answer is the first one's, the run stays finished, and no restart enqueues it again."""
    key = {"idempotency-key": "order-18"}
    with ServerThread(either_store) as server, httpx.Client(base_url=server.url) as client:
        assert client.post("/v1/workspaces", json={"id": "w"}).status_code == 201
        run = client.post("/v1/workspaces/w/runs", json={"input": "a"}, headers=key).json()["run"]
        wait_completed(client, run)
    with (
        ServerThread(either_store, workers=False) as server,
        httpx.Client(base_url=server.url) as client,
    ):
        again = client.post("/v1/workspaces/w/runs", json={"input": "a"}, headers=key)
        assert again.status_code == 202 and again.json()["run"] == run
        assert client.get(f"/v1/runs/{run}").json()["status"] == "completed"
        assert server.call(server.mezzo.recover()) == 0  # a restart brings nothing back
        store = server.mezzo.store
        assert server.call(store.active_runs()) == []
        assert sum(server.call(store.queue_depth(RUN_QUEUE)).values()) == 0



def test_an_accepted_run_whose_job_is_missing_is_enqueued_by_recover(
    either_store: Settings,
) -> None:
    """What a crash between an accepting append's two round trips leaves (Redis: the events
    and the active-index entry went in, the job did not): `recover()`, which every worker
    start runs, enqueues the run's job again."""
    with (
        ServerThread(either_store, workers=False) as server,
        httpx.Client(base_url=server.url, trust_env=False) as client,
    ):
        assert client.post("/v1/workspaces", json={"id": "w"}).status_code == 201
        run = client.post("/v1/workspaces/w/runs", json={"input": "a"}).json()["run"]
        store = server.mezzo.store
        (job,) = server.call(store.lease(RUN_QUEUE, "crashed", 1, 30))
        server.call(store.ack(job))  # the job is gone, the run is not
        assert sum(server.call(store.queue_depth(RUN_QUEUE)).values()) == 0
        assert server.call(server.mezzo.recover()) == 1
        (again,) = server.call(store.lease(RUN_QUEUE, "w", 1, 30))
        assert again.payload["run"] == run
