"""Retention of finished runs' events: a workspace keeps its newest events, never an open run's."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from core_support import ServerThread, core_settings
from mezzo.stub.server import StubServer


def test_finished_runs_are_compacted_to_the_newest_events(tmp_path: Path, stub: StubServer) -> None:
    with ServerThread(core_settings(tmp_path / "data", stub, retain_events=10)) as server:
        url = server.url
        client = httpx.Client(base_url=url, trust_env=False)
        client.post("/v1/workspaces", json={"id": "r"})
        waiting = client.post("/v1/workspaces/r/runs", json={"input": "wait\n/call t {}"}).json()[
            "run"
        ]
        deadline = time.monotonic() + 20
        while client.get(f"/v1/runs/{waiting}").json()["status"] != "awaiting_tool":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        runs = [
            client.post("/v1/workspaces/r/runs", json={"input": f"x{i}"}).json()["run"]
            for i in range(5)
        ]
        while {
            e["run"]
            for e in client.get("/v1/workspaces/r/events", params={"types": "completed"}).json()
        } != set(runs):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        kept = client.get("/v1/workspaces/r/events").json()
        # The open run pins the log from its first event: nothing is dropped yet.
        assert kept[0]["seq"] == 1 and kept[0]["run"] == waiting
        assert client.post(f"/v1/runs/{waiting}/cancel").status_code == 200
        more = client.post("/v1/workspaces/r/runs", json={"input": "last"}).json()["run"]
        # The worker compacts the log just after it records the run's end: wait for both.
        while (
            client.get(f"/v1/runs/{more}").json()["status"] != "completed"
            or len(client.get("/v1/workspaces/r/events").json()) > 10
        ):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        after = client.get("/v1/workspaces/r/events").json()
        head = client.get("/v1/workspaces/r").json()["head_seq"]
        assert len(after) == 10 and after[-1]["seq"] == head
        assert [e["seq"] for e in after] == list(range(head - 9, head + 1))
        assert client.get(f"/v1/runs/{more}").json()["output"] == "echo: last"
        # Runs whose events are gone still read back whole, from their final snapshot.
        first = client.get(f"/v1/runs/{runs[0]}").json()
        assert (first["status"], first["output"]) == ("completed", "echo: x0")
        assert client.get(f"/v1/runs/{waiting}").json()["status"] == "cancelled"
        assert all(e["run"] != runs[0] for e in after)
