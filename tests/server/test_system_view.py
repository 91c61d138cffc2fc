"""`/v1/system` shows a tenant its own runs and dead letters; the server-wide queue depth and
worker counts only to an admin key."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core_support import ServerThread, core_settings
from mezzo.server.auth import create_key
from mezzo.stub.server import StubServer

TOOL = {"name": "lookup", "parameters": {"type": "object", "properties": {}}}


@pytest.fixture
def clients(tmp_path: Path, stub: StubServer) -> Iterator[dict[str, httpx.Client]]:
    with ServerThread(core_settings(tmp_path / "data", stub)) as server:
        made = {}
        for name, admin in (("acme", False), ("bob", False), ("ops", True)):
            key = server.call(create_key(server.mezzo.store, name, admin=admin))
            made[name] = httpx.Client(
                base_url=server.url, headers={"authorization": f"Bearer {key}"}, trust_env=False
            )
        yield made
        for client in made.values():
            client.close()


def test_a_tenant_sees_its_own_runs_and_no_server_wide_figures(
    clients: dict[str, httpx.Client],
) -> None:
    acme, bob, ops = clients["acme"], clients["bob"], clients["ops"]
    for client, workspace in ((acme, "prod"), (bob, "staging")):
        client.post("/v1/workspaces", json={"id": workspace, "tools": [TOOL]}).raise_for_status()
    run = acme.post("/v1/workspaces/prod/runs", json={"input": "x\n/call lookup"}).json()["run"]
    deadline = time.monotonic() + 20
    while acme.get(f"/v1/runs/{run}").json()["status"] != "awaiting_tool":
        assert time.monotonic() < deadline
        time.sleep(0.05)

    mine = acme.get("/v1/system").json()
    assert mine["operator"] is False
    assert mine["queue_depth"] is None and mine["workers"] is None
    assert mine["active_runs"] == {"prod": [run]}
    theirs = bob.get("/v1/system").json()
    assert theirs["queue_depth"] is None and theirs["workers"] is None
    assert theirs["active_runs"] == {}

    operator = ops.get("/v1/system").json()
    assert operator["operator"] is True
    assert isinstance(operator["queue_depth"], dict)  # by priority; empty when none waits
    assert operator["workers"]["concurrency"] > 0
    assert operator["active_runs"] == {}  # runs are shown to their own tenant
