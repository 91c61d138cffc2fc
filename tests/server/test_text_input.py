"""Text that cannot be written out again (a lone UTF-16 surrogate, which JSON can spell as
`"\\ud800"`) is refused wherever a client sends a string, and whatever the store already holds
(from before this check, or from a model) reads back on every path: REST, SSE, WebSocket and
the embedded SDK."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets
from pydantic import ValidationError

from core_support import ServerThread, core_settings
from mezzo import keys
from mezzo.client.embedded import EmbeddedTransport
from mezzo.protocol import CancelIn, CreateWorkspace, InputIn, NewEvent, SubmitRun, ToolResultIn
from mezzo.stub.server import StubServer

LONE = "\\ud800"  # as JSON spells it: a high surrogate with no low one after it
TOOL = {"name": "lookup", "parameters": {"type": "object", "properties": {}}}


def raw(client: httpx.Client, path: str, body: str) -> httpx.Response:
    """POST a JSON body exactly as written (httpx would not let a lone surrogate through)."""
    return client.post(path, content=body.encode(), headers={"content-type": "application/json"})


@pytest.fixture
def server(tmp_path, stub: StubServer) -> Iterator[ServerThread]:
    with ServerThread(core_settings(tmp_path / "data", stub)) as running:
        yield running


@pytest.fixture
def client(server: ServerThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, trust_env=False, timeout=20) as c:
        yield c


def wait_for(client: httpx.Client, run: str, statuses: set[str]) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while (body := client.get(f"/v1/runs/{run}").json())["status"] not in statuses:
        assert time.monotonic() < deadline, body
        time.sleep(0.05)
    return body


def test_every_string_a_client_sends_is_checked(client: httpx.Client) -> None:
    refused = {
        "instructions": f'{{"id": "s1", "instructions": "a{LONE}b"}}',
        "route": f'{{"id": "s1", "route": "{LONE}"}}',
        "tool description": f'{{"id": "s1", "tools": [{{"name": "t", "description": "{LONE}"}}]}}',
        "tool schema": (
            f'{{"id": "s1", "tools": [{{"name": "t", "parameters": {{"type": "object", '
            f'"properties": {{"k": {{"description": "x{LONE}"}}}}}}}}]}}'
        ),
        "tool schema key": f'{{"id": "s1", "tools": [{{"name": "t", "parameters": {{"{LONE}": 1}}}}]}}',
    }
    for what, body in refused.items():
        answer = raw(client, "/v1/workspaces", body)
        assert answer.status_code == 422, (what, answer.text)
        assert "surrogate" in answer.text, (what, answer.text)
    assert client.get("/v1/workspaces/s1").status_code == 404  # nothing half-written

    assert client.post("/v1/workspaces", json={"id": "w", "tools": [TOOL]}).status_code == 201
    for body in (
        f'{{"input": "{LONE}"}}',
        f'{{"input": "x", "metadata": {{"k": "{LONE}"}}}}',
        f'{{"input": "x", "metadata": {{"{LONE}": "v"}}}}',
    ):
        answer = raw(client, "/v1/workspaces/w/runs", body)
        assert answer.status_code == 422 and "surrogate" in answer.text, (body, answer.text)
    assert client.get("/v1/workspaces/w/events").json() == []

    run = client.post("/v1/workspaces/w/runs", json={"input": "q\n/call lookup"}).json()["run"]
    call = wait_for(client, run, {"awaiting_tool"})["pending_tool_calls"][0]["call_id"]
    for path, body in (
        (
            f"/v1/runs/{run}/tool_results",
            f'{{"results": [{{"call_id": "{call}", "output": "{LONE}"}}]}}',
        ),
        (
            f"/v1/runs/{run}/tool_results",
            f'{{"results": [{{"call_id": "{LONE}", "output": "o"}}]}}',
        ),
        (f"/v1/runs/{run}/cancel", f'{{"reason": "{LONE}"}}'),
        (f"/v1/runs/{run}/input", f'{{"text": "{LONE}"}}'),
    ):
        answer = raw(client, path, body)
        assert answer.status_code == 422 and "surrogate" in answer.text, (path, answer.text)
    assert wait_for(client, run, {"awaiting_tool"})["status"] == "awaiting_tool"

    # A pair of surrogates is one code point (an emoji): text, and taken.
    answer = raw(client, f"/v1/runs/{run}/cancel", '{"reason": "done \\ud83d\\ude00"}')
    assert answer.status_code == 200, answer.text
    events = client.get("/v1/workspaces/w/events", params={"types": "cancelled"}).json()
    assert events[0]["data"]["reason"] == "done \U0001f600"


def test_the_embedded_sdk_checks_the_same_models() -> None:
    lone = "\ud800"
    for build in (
        lambda: CreateWorkspace(instructions=lone),
        lambda: SubmitRun(input=f"a{lone}"),
        lambda: SubmitRun(input="a", metadata={lone: "v"}),
        lambda: ToolResultIn(call_id="c", output=lone),
        lambda: CancelIn(reason=lone),
        lambda: InputIn(text=lone),
        lambda: CreateWorkspace(tools=[{"name": "t", "parameters": {"a": [{"b": lone}]}}]),
    ):
        with pytest.raises(ValidationError, match="surrogate"):
            build()


def test_what_the_store_holds_reads_back_on_every_path(
    server: ServerThread, client: httpx.Client
) -> None:
    """A workspace and events written with lone surrogates (as mezzo accepted them before, or
    as a model may produce them) read back everywhere, with U+FFFD in their place, and the
    workspace still runs."""
    store, lone = server.mezzo.store, "\ud800"
    key = keys.workspace_key("local", "old")
    record = {
        "id": key,
        "name": "old",
        "tenant": "local",
        "config": {"instructions": f"be {lone} brief"},
        "throttle_rate": 1.0,
        "created_at": 1.0,
    }
    server.call(store.kv_put(keys.workspace(key), record))
    server.call(store.kv_put(keys.tenant_workspace("local", "old"), {"id": "old", "key": key}))
    server.call(store.ledger_init(key, 1_000_000))
    server.call(
        store.append(key, "run_old", [NewEvent(type="run_queued", data=_queued(f"in{lone}"))], 0)
    )
    server.call(
        store.append(
            key,
            "run_old",
            [NewEvent(type="cancelled", data={"reason": f"why{lone}", lone: 1})],
            1,
        )
    )

    shown = client.get("/v1/workspaces/old")
    assert shown.status_code == 200 and shown.json()["config"]["instructions"] == "be \ufffd brief"
    assert [w["id"] for w in client.get("/v1/workspaces").json()] == ["old"]
    page = client.get("/v1/workspaces/old/events")
    assert page.status_code == 200, page.text
    assert page.json()[1]["data"] == {"reason": "why\ufffd", "\ufffd": 1}
    assert client.get("/v1/runs/run_old").json()["input"] == "in\ufffd"

    headers = {"accept": "text/event-stream"}
    with client.stream("GET", "/v1/workspaces/old/events", headers=headers) as stream:
        frames = []
        for line in stream.iter_lines():
            if line.startswith("data: "):
                frames.append(json.loads(line[6:]))
            if len(frames) == 2:
                break
    assert frames[1]["data"]["reason"] == "why\ufffd"

    async def over_websocket() -> list[dict[str, Any]]:
        url = f"{server.url.replace('http', 'ws')}/v1/workspaces/old/events"
        async with websockets.connect(url) as ws:
            return [json.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(2)]

    assert asyncio.run(over_websocket())[1]["data"]["reason"] == "why\ufffd"

    embedded = EmbeddedTransport(server.mezzo)
    page_embedded = server.call(embedded.events("old", 0, None))
    assert page_embedded[1].data["reason"] == "why\ufffd"
    assert json.loads(page_embedded[1].model_dump_json())["data"]["\ufffd"] == 1

    # The instructions reach the model as text: the run completes, it is not retried to death.
    run = client.post("/v1/workspaces/old/runs", json={"input": "hello"}).json()["run"]
    assert wait_for(client, run, {"completed", "failed"})["status"] == "completed"


def _queued(text: str) -> dict[str, Any]:
    return {"input": text, "priority": "normal", "max_steps": 5, "metadata": {}}
