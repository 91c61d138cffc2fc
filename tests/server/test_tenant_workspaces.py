"""Workspace ids are each tenant's own: two tenants may both have `prod`, neither can take the
other's id (the gateway's default `gateway-<tenant>` included), a create says nothing about
another tenant's ids, and every answer, event and view shows the tenant's own id. Workspaces
made before ids were per tenant keep working."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets

from core_support import ServerThread, core_settings
from mezzo import keys
from mezzo.errors import NotFound
from mezzo.protocol import CreateWorkspace, NewEvent
from mezzo.server.auth import create_key
from mezzo.stub.server import StubServer

TOOL = {"name": "lookup", "parameters": {"type": "object", "properties": {}}}


@pytest.fixture
def tenants(tmp_path, stub: StubServer) -> Iterator[tuple[ServerThread, dict[str, httpx.Client]]]:
    with ServerThread(core_settings(tmp_path / "data", stub)) as server:
        clients = {}
        for tenant in ("acme", "bob", "carol"):
            key = server.call(create_key(server.mezzo.store, tenant))
            clients[tenant] = httpx.Client(
                base_url=server.url,
                headers={"authorization": f"Bearer {key}"},
                trust_env=False,
                timeout=20,
            )
        yield server, clients
        for client in clients.values():
            client.close()


def wait_for(client: httpx.Client, run: str, statuses: set[str]) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while True:
        body = client.get(f"/v1/runs/{run}").json()
        if body["status"] in statuses:
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.05)


def test_two_tenants_each_have_their_own_prod(tenants) -> None:
    _, c = tenants
    a = c["acme"].post("/v1/workspaces", json={"id": "prod", "budget_tokens": 5000})
    b = c["bob"].post("/v1/workspaces", json={"id": "prod", "budget_tokens": 7000})
    assert (a.status_code, b.status_code) == (201, 201), (a.text, b.text)
    assert a.json()["id"] == b.json()["id"] == "prod"
    assert c["acme"].get("/v1/workspaces/prod").json()["budget"]["budget_tokens"] == 5000
    assert c["bob"].get("/v1/workspaces/prod").json()["budget"]["budget_tokens"] == 7000

    accepted = c["acme"].post("/v1/workspaces/prod/runs", json={"input": "hello"}).json()
    assert accepted["workspace"] == "prod"
    assert accepted["events_url"].startswith("/v1/workspaces/prod/events")
    run = wait_for(c["acme"], accepted["run"], {"completed"})
    assert run["workspace"] == "prod" and run["output"] == "echo: hello"

    mine = c["acme"].get("/v1/workspaces/prod/events").json()
    assert [e["type"] for e in mine][-1] == "completed"
    assert {e["workspace"] for e in mine} == {"prod"}
    assert c["bob"].get("/v1/workspaces/prod/events").json() == []
    assert c["bob"].get(f"/v1/runs/{accepted['run']}").status_code == 404
    assert c["bob"].get("/v1/workspaces/prod").json()["budget"]["committed"] == 0
    assert [w["id"] for w in c["bob"].get("/v1/workspaces").json()] == ["prod"]


def test_a_create_reveals_nothing_about_another_tenants_ids(tenants) -> None:
    _, c = tenants
    assert c["acme"].post("/v1/workspaces", json={"id": "taken"}).status_code == 201
    theirs = c["bob"].post("/v1/workspaces", json={"id": "taken"})
    fresh = c["bob"].post("/v1/workspaces", json={"id": "never-used"})
    assert theirs.status_code == fresh.status_code == 201
    assert set(theirs.json()) == set(fresh.json())
    assert theirs.json()["tenant"] == "bob"
    # Unknown and foreign ids answer alike too.
    foreign = c["carol"].get("/v1/workspaces/taken")
    unknown = c["carol"].get("/v1/workspaces/nothing-here")
    assert foreign.status_code == unknown.status_code == 404
    assert foreign.json()["error"].replace("taken", "X") == unknown.json()["error"].replace(
        "nothing-here", "X"
    )


def test_no_tenant_can_take_another_tenants_default_gateway_workspace(tenants) -> None:
    """Bob creates `gateway-carol` (tiny budget) before Carol's first gateway call: Carol's
    default gateway workspace is still hers, found through `Mezzo`'s tenant-checked methods as
    the gateway finds it, and nothing she does reaches Bob's workspace."""
    server, c = tenants
    mezzo = server.mezzo
    assert c["bob"].post("/v1/workspaces", json={"id": "gateway-carol", "budget_tokens": 1})
    with pytest.raises(NotFound):
        server.call(mezzo.workspace_record("carol", "gateway-carol"))
    server.call(mezzo.create_workspace("carol", CreateWorkspace(id="gateway-carol")))
    carols = server.call(mezzo.workspace_record("carol", "gateway-carol"))
    bobs = server.call(mezzo.workspace_record("bob", "gateway-carol"))
    assert carols.tenant == "carol" and bobs.tenant == "bob" and carols.id != bobs.id
    assert carols.config.budget_tokens == 1_000_000
    # What the gateway appends for Carol lands in her log, never in Bob's.
    server.call(
        mezzo.store.append(carols.id, None, [NewEvent(type="throttled", data={"rate": 1.0})], None)
    )
    assert len(c["carol"].get("/v1/workspaces/gateway-carol/events").json()) == 1
    assert c["bob"].get("/v1/workspaces/gateway-carol/events").json() == []


def test_the_streams_show_the_tenants_own_id(tenants) -> None:
    server, c = tenants
    for tenant in ("acme", "bob"):
        c[tenant].post("/v1/workspaces", json={"id": "live", "tools": [TOOL]})
    accepted = c["acme"].post("/v1/workspaces/live/runs", json={"input": "x\n/call lookup"})
    run = accepted.json()["run"]
    wait_for(c["acme"], run, {"awaiting_tool"})

    headers = {**c["acme"].headers, "accept": "text/event-stream"}
    with c["acme"].stream("GET", "/v1/workspaces/live/events", headers=headers) as stream:
        frames = []
        for line in stream.iter_lines():
            if line.startswith("data: "):
                frames.append(json.loads(line[6:]))
            if len(frames) == 3:
                break
    assert {f["workspace"] for f in frames} == {"live"}

    async def first_ws_event() -> dict[str, Any]:
        token = c["acme"].headers["authorization"].split()[1]
        url = f"{server.url.replace('http', 'ws')}/v1/workspaces/live/events?token={token}"
        async with websockets.connect(url) as ws:
            return json.loads(await asyncio.wait_for(ws.recv(), 10))

    assert asyncio.run(first_ws_event())["workspace"] == "live"
    system = c["acme"].get("/v1/system").json()
    assert system["active_runs"] == {"live": [run]}
    assert c["bob"].get("/v1/system").json()["active_runs"] == {}
    uploaded = c["acme"].post("/v1/workspaces/live/files", params={"name": "a.txt"}, content=b"hi")
    assert uploaded.status_code == 201, uploaded.text
    assert uploaded.json()["workspace"] == "live"
    listed = c["acme"].get("/v1/workspaces/live/files").json()
    assert [f["workspace"] for f in listed] == ["live"]
    assert c["bob"].get("/v1/workspaces/live/files").json() == []


def test_the_embedded_service_shows_the_tenants_own_id(tenants) -> None:
    server, _ = tenants
    mezzo = server.mezzo
    server.call(mezzo.create_workspace("acme", CreateWorkspace(id="emb")))
    accepted, _ = server.call(mezzo.submit_run("acme", "emb", _submit("hi")))
    assert accepted.workspace == "emb"
    events = server.call(mezzo.events("acme", "emb"))
    assert events and {e.workspace for e in events} == {"emb"}

    async def first_subscribed() -> str:
        async for event in mezzo.subscribe("acme", "emb"):
            return event.workspace
        raise AssertionError("no event")

    assert server.call(first_subscribed()) == "emb"
    assert server.call(mezzo.get_run("acme", accepted.run)).workspace == "emb"


def _submit(text: str) -> Any:
    from mezzo.protocol import SubmitRun

    return SubmitRun(input=text)


def test_workspaces_made_before_ids_were_per_tenant_keep_working(tenants) -> None:
    """A workspace written as mezzo wrote it before (record and index under its id, log and
    ledger under its id) is its tenant's, readable and usable, and another tenant creating the
    same id gets a workspace of its own."""
    server, c = tenants
    store = server.mezzo.store
    legacy = {
        "id": "old",
        "tenant": "acme",
        "config": {"budget_tokens": 9000, "tools": [TOOL]},
        "throttle_rate": 1.0,
        "created_at": 1.0,
    }
    server.call(store.kv_put(keys.workspace("old"), legacy))
    server.call(store.kv_put(keys.tenant_workspace("acme", "old"), {"id": "old"}))
    server.call(store.ledger_init("old", 9000))
    server.call(store.append("old", None, [NewEvent(type="throttled", data={"rate": 1.0})], None))

    assert c["acme"].get("/v1/workspaces/old").json()["budget"]["budget_tokens"] == 9000
    assert [w["id"] for w in c["acme"].get("/v1/workspaces").json()] == ["old"]
    again = c["acme"].post(
        "/v1/workspaces", json={"id": "old", "budget_tokens": 9000, "tools": [TOOL]}
    )
    assert again.status_code == 200, again.text
    accepted = c["acme"].post("/v1/workspaces/old/runs", json={"input": "still here"}).json()
    assert wait_for(c["acme"], accepted["run"], {"completed"})["output"] == "echo: still here"
    events = c["acme"].get("/v1/workspaces/old/events").json()
    assert events[0]["type"] == "throttled" and events[-1]["type"] == "completed"
    assert {e["workspace"] for e in events} == {"old"}
    uploaded = c["acme"].post("/v1/workspaces/old/files", params={"name": "n.txt"}, content=b"1")
    assert uploaded.status_code == 201 and uploaded.json()["workspace"] == "old"

    assert c["bob"].get("/v1/workspaces/old").status_code == 404
    mine = c["bob"].post("/v1/workspaces", json={"id": "old"})
    assert mine.status_code == 201 and mine.json()["budget"]["budget_tokens"] == 1_000_000
    assert c["bob"].get("/v1/workspaces/old/events").json() == []
    assert len(c["acme"].get("/v1/workspaces/old/events").json()) == len(events)
