"""Admin API and /metrics on a real loopback server: admin keys only, clear 4xx for mistakes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from core_support import ServerThread, core_settings
from mezzo import keys
from mezzo.engine.worker import RUN_QUEUE
from mezzo.server.auth import create_key
from mezzo.stub.server import StubServer


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
    return value


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


@pytest.fixture
def idle(tmp_path: Path, stub: StubServer) -> Iterator[tuple[ServerThread, str, str]]:
    """A server without workers (nothing leases), with an admin key and a tenant's key."""
    with ServerThread(core_settings(tmp_path / "data", stub), workers=False) as server:
        admin = server.call(create_key(server.mezzo.store, "ops", "root", admin=True))
        user = server.call(create_key(server.mezzo.store, "acme", "app"))
        yield server, admin, user


def test_admin_endpoints_need_an_admin_key(idle: tuple[ServerThread, str, str]) -> None:
    server, admin, user = idle
    for path in ("/metrics", "/v1/admin/dead", "/v1/admin/workers"):
        assert httpx.get(server.url + path, trust_env=False).status_code == 401
        refused = httpx.get(server.url + path, headers=bearer(user), trust_env=False)
        assert refused.status_code == 403
        assert "admin" in refused.json()["error"]
        assert httpx.get(server.url + path, headers=bearer(admin), trust_env=False).is_success


def test_dead_letters_are_listed_and_requeued_once(idle: tuple[ServerThread, str, str]) -> None:
    server, admin, _ = idle
    store = server.mezzo.store

    async def kill_a_job() -> None:
        await store.enqueue(
            RUN_QUEUE, "run:r_dead", {"workspace": "w", "run": "r_dead"}, max_attempts=1
        )
        (job,) = await store.lease(RUN_QUEUE, "test", 1, 5.0)
        assert not await store.retry(job, 0.0, "boom")

    server.call(kill_a_job())
    client = httpx.Client(base_url=server.url, headers=bearer(admin), trust_env=False)
    (dead,) = client.get("/v1/admin/dead").json()
    assert dead["job"] == "run:r_dead" and dead["run"] == "r_dead"
    assert dead["last_error"] == "boom" and dead["attempts"] == 1
    assert client.post("/v1/admin/dead/run:r_dead/requeue").json()["job"] == "run:r_dead"
    assert client.get("/v1/admin/dead").json() == []
    assert sum(server.call(store.queue_depth(RUN_QUEUE)).values()) == 1
    again = client.post("/v1/admin/dead/run:r_dead/requeue")
    assert again.status_code == 409 and "not dead-lettered" in again.json()["error"]
    assert client.post("/v1/admin/dead/run:nope/requeue").status_code == 409


def test_run_state_is_the_folded_state(idle: tuple[ServerThread, str, str]) -> None:
    server, admin, user = idle
    app = httpx.Client(base_url=server.url, headers=bearer(user), trust_env=False)
    app.post("/v1/workspaces", json={"id": "w1"}).raise_for_status()
    run = app.post("/v1/workspaces/w1/runs", json={"input": "hello"}).json()["run"]
    ops = httpx.Client(base_url=server.url, headers=bearer(admin), trust_env=False)
    view = ops.get(f"/v1/admin/runs/{run}/state").json()
    assert view["tenant"] == "acme" and view["workspace"] == "w1"
    assert view["state"]["status"] == "queued" and view["state"]["input"] == "hello"
    assert view["state"]["version"] == 1
    assert view["state"]["transcript"] == [
        {"role": "user", "content": "hello", "tool_calls": [], "call_id": None}
    ]
    missing = ops.get("/v1/admin/runs/run_nope/state")
    assert missing.status_code == 404 and "run_nope" in missing.json()["error"]


def test_workers_are_listed_and_drained(tmp_path: Path, stub: StubServer) -> None:
    with ServerThread(core_settings(tmp_path / "data", stub)) as server:
        client = httpx.Client(base_url=server.url, trust_env=False)
        name = server.mezzo.pool.name  # type: ignore[union-attr]
        (worker,) = wait_for(lambda: client.get("/v1/admin/workers").json(), "a heartbeat")
        assert worker["name"] == name and worker["alive"] and not worker["draining"]
        unknown = client.post("/v1/admin/workers/nobody/drain")
        assert unknown.status_code == 404 and "nobody" in unknown.json()["error"]
        accepted = client.post(f"/v1/admin/workers/{name}/drain")
        assert accepted.status_code == 202 and accepted.json()["drain_requested"]
        drained = wait_for(
            lambda: [w for w in client.get("/v1/admin/workers").json() if w["draining"]],
            "the worker to drain",
        )
        beat = drained[0]["last_beat"]
        client.post("/v1/workspaces", json={"id": "w"}).raise_for_status()
        run = client.post("/v1/workspaces/w/runs", json={"input": "hi"}).json()["run"]
        # Two more heartbeats: the pool's lease loop has long stopped; the run was not taken.
        wait_for(
            lambda: client.get("/v1/admin/workers").json()[0]["last_beat"] > beat + 2,
            "two more heartbeats",
        )
        assert client.get(f"/v1/runs/{run}").json()["status"] == "queued"


def test_metrics_count_runs_provider_calls_and_tokens(server: ServerThread) -> None:
    client = httpx.Client(base_url=server.url, trust_env=False)
    client.post("/v1/workspaces", json={"id": "w"}).raise_for_status()
    run = client.post("/v1/workspaces/w/runs", json={"input": "count me"}).json()["run"]
    wait_for(
        lambda: client.get(f"/v1/runs/{run}").json()["status"] == "completed", "the run to end"
    )
    exposed = client.get("/metrics")
    assert exposed.headers["content-type"].startswith("text/plain")
    found = samples(exposed.text)
    assert found[("mezzo_runs_total", (("status", "queued"),))] >= 1
    assert found[("mezzo_runs_total", (("status", "completed"),))] >= 1
    call = (("model", "openai:stub-model"), ("route", "default"))
    assert found[("mezzo_provider_call_seconds_count", call)] >= 1
    # The `workspace` label is the workspace's key: ids are per tenant, keys are unique.
    label = (("route", "default"), ("workspace", keys.workspace_key("local", "w")))
    spent = found[("mezzo_tokens_committed_total", label)]
    usage = client.get(f"/v1/runs/{run}").json()["usage"]
    assert spent >= usage["input_tokens"] + usage["output_tokens"] > 0
    for priority in ("high", "normal", "low"):
        assert ("mezzo_queue_depth", (("priority", priority),)) in found
    assert found[("mezzo_jobs_leased_total", ())] >= 1
    # Bounded labels: no run id anywhere in the exposition.
    assert run not in exposed.text


def test_request_ids_are_echoed_or_made(idle: tuple[ServerThread, str, str]) -> None:
    server, _, _ = idle
    given = httpx.get(f"{server.url}/healthz", headers={"x-request-id": "req-42"}, trust_env=False)
    assert given.headers["x-request-id"] == "req-42"
    made = httpx.get(f"{server.url}/healthz", trust_env=False).headers["x-request-id"]
    assert len(made) == 32 and int(made, 16) >= 0
    odd = httpx.get(f"{server.url}/healthz", headers={"x-request-id": "a b"}, trust_env=False)
    assert odd.headers["x-request-id"] != "a b"
