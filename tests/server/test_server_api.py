"""The HTTP API on a real loopback server, with the stub LLM as the upstream."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
import websockets

from core_support import ServerThread


def wait_for_status(
    client: httpx.Client, run: str, statuses: set[str], timeout: float = 20
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(f"/v1/runs/{run}").json()
        if body["status"] in statuses:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run} stayed {body['status']}: {body}")
        time.sleep(0.05)


@pytest.fixture
def client(server: ServerThread) -> httpx.Client:
    with httpx.Client(base_url=server.url, trust_env=False, timeout=10) as c:
        yield c


def create(client: httpx.Client, ws: str = "w1", **config: Any) -> dict[str, Any]:
    response = client.post("/v1/workspaces", json={"id": ws, **config})
    assert response.status_code in (200, 201), response.text
    return response.json()


def test_submit_answers_202_with_location_and_the_run_completes(client: httpx.Client) -> None:
    create(client)
    response = client.post("/v1/workspaces/w1/runs", json={"input": "hello"})
    assert response.status_code == 202
    body = response.json()
    assert response.headers["location"] == f"/v1/runs/{body['run']}"
    run = wait_for_status(client, body["run"], {"completed"})
    assert run["output"] == "echo: hello"
    assert run["usage"]["input_tokens"] > 0 and run["usage"]["output_tokens"] > 0
    types = [e["type"] for e in client.get("/v1/workspaces/w1/events").json()]
    assert types == [
        "run_queued",
        "run_started",
        "model_call",
        "model_result",
        "message",
        "completed",
    ]
    workspace = client.get("/v1/workspaces/w1").json()
    assert (
        workspace["budget"]["committed"]
        == run["usage"]["input_tokens"] + run["usage"]["output_tokens"]
    )
    assert workspace["budget"]["reserved"] == 0


def test_workspace_create_is_idempotent_and_conflicts_on_other_config(client: httpx.Client) -> None:
    assert client.post("/v1/workspaces", json={"id": "w1", "budget_tokens": 100}).status_code == 201
    assert client.post("/v1/workspaces", json={"id": "w1", "budget_tokens": 100}).status_code == 200
    conflict = client.post("/v1/workspaces", json={"id": "w1", "budget_tokens": 200})
    assert conflict.status_code == 409 and "different configuration" in conflict.json()["error"]


def test_idempotency_key_returns_the_same_run(client: httpx.Client) -> None:
    create(client)
    headers = {"idempotency-key": "k1"}
    first = client.post("/v1/workspaces/w1/runs", json={"input": "hi"}, headers=headers).json()
    second = client.post("/v1/workspaces/w1/runs", json={"input": "hi"}, headers=headers).json()
    assert first["run"] == second["run"]
    other = client.post("/v1/workspaces/w1/runs", json={"input": "other"}, headers=headers)
    assert other.status_code == 409
    wait_for_status(client, first["run"], {"completed"})
    assert len(client.get("/v1/workspaces/w1/events", params={"types": "run_queued"}).json()) == 1


def test_client_tool_loop_over_several_steps(client: httpx.Client) -> None:
    tool = {
        "name": "lookup",
        "parameters": {"type": "object", "properties": {"k": {"type": "string"}}},
    }
    create(client, tools=[tool])
    task = 'go\n/call lookup {"k": "a"}\n/call lookup {"k": "b"}\n/call lookup {"k": "c"}'
    run = client.post("/v1/workspaces/w1/runs", json={"input": task}).json()["run"]
    answers = []
    for expected in ("a", "b", "c"):
        body = wait_for_status(client, run, {"awaiting_tool"})
        (pending,) = body["pending_tool_calls"]
        assert pending["arguments"] == {"k": expected}
        response = client.post(
            f"/v1/runs/{run}/tool_results",
            json={"results": [{"call_id": pending["call_id"], "output": f"value-{expected}"}]},
        )
        assert response.status_code == 200, response.text
        answers.append(pending["call_id"])
    done = wait_for_status(client, run, {"completed"})
    assert done["output"] == "echo: value-c" and done["steps"] == 4
    # A result for a call that is not pending changes nothing.
    stale = client.post(
        f"/v1/runs/{run}/tool_results", json={"results": [{"call_id": answers[0], "output": "x"}]}
    )
    assert stale.status_code == 409


def test_yield_and_resume_with_input(client: httpx.Client) -> None:
    create(client)
    run = client.post(
        "/v1/workspaces/w1/runs",
        json={"input": 'plan\n/call request_human_input {"question": "Ship it?"}'},
    ).json()["run"]
    body = wait_for_status(client, run, {"awaiting_input"})
    assert body["pending_input"]["question"] == "Ship it?"
    types = [e["type"] for e in client.get("/v1/workspaces/w1/events").json()]
    assert "yield" in types and "tool_call" not in types
    assert client.post(f"/v1/runs/{run}/input", json={"text": "yes, ship"}).status_code == 200
    assert wait_for_status(client, run, {"completed"})["output"] == "echo: yes, ship"
    again = client.post(f"/v1/runs/{run}/input", json={"text": "again"})
    assert again.status_code == 409 and "not waiting for input" in again.json()["error"]


def test_cancel_stops_an_in_flight_stream_within_a_second(
    server: ServerThread, client: httpx.Client
) -> None:
    stub_url = server.mezzo.settings.openai_base_url
    assert stub_url
    httpx.post(
        stub_url.removesuffix("/v1") + "/_stub/config",
        json={"tokens_per_second": 5, "reply_tokens": 200},
        trust_env=False,
    )
    create(client)
    run = client.post("/v1/workspaces/w1/runs", json={"input": "long answer"}).json()["run"]
    wait_for_status(client, run, {"running"})
    deadline = time.monotonic() + 10
    while not [
        e for e in client.get("/v1/workspaces/w1/events").json() if e["type"] == "model_call"
    ]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    cancelled_at = time.monotonic()
    response = client.post(f"/v1/runs/{run}/cancel", json={"reason": "enough"})
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    # The stub sees the stream closed soon after (its open-stream count drops to zero).
    stats_url = stub_url.removesuffix("/v1") + "/_stub/stats"
    while (stats := httpx.get(stats_url, trust_env=False).json())["streams_open"] > 0:
        assert time.monotonic() - cancelled_at < 1.5, "stream still open after cancel"
        time.sleep(0.05)
    assert stats["streams_disconnected"] == 1 and stats["streams_completed"] == 0
    assert client.post(f"/v1/runs/{run}/cancel").status_code == 409


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/v1/workspaces", "{not json", 422),
        ("/v1/workspaces", {"id": "w2", "surprise": 1}, 422),
        ("/v1/workspaces", {"id": "w2", "budget_tokens": "lots"}, 422),
        ("/v1/workspaces", {"id": "w2", "budget_tokens": 0}, 422),
        ("/v1/workspaces", {"id": "w2", "alert_thresholds": [1.5]}, 422),
        ("/v1/workspaces", {"id": "bad id!"}, 422),
        ("/v1/workspaces", {"id": "w2", "route": "nope"}, 400),
        ("/v1/workspaces", {"id": "w2", "tools": [{"name": "x", "side": "server"}]}, 400),
        ("/v1/workspaces/w1/runs", {"input": ""}, 422),
        ("/v1/workspaces/missing/runs", {"input": "x"}, 404),
        ("/v1/runs/run_missing/cancel", {}, 404),
        ("/v1/runs/run_missing/input", {"text": "x"}, 404),
        ("/v1/workspaces/w1/throttle", {"rate": 0}, 422),
        ("/v1/workspaces/w1/throttle", {"rate": 1.5}, 422),
        ("/v1/workspaces/w1/budget", {"add_tokens": -5}, 422),
        ("/v1/workspaces/w1/budget", {"add_tokens": 5}, 409),
    ],
)
def test_bad_input_gets_a_clear_4xx_and_changes_nothing(
    client: httpx.Client, path: str, body: Any, status: int
) -> None:
    create(client)
    before = client.get("/v1/workspaces/w1").json()
    content = body if isinstance(body, str) else json.dumps(body)
    response = client.post(path, content=content, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    assert response.json()["error"]
    after = client.get("/v1/workspaces/w1").json()
    assert after == before
    assert client.get("/v1/workspaces/w2").status_code == 404


def test_oversize_body_is_refused_with_413(client: httpx.Client) -> None:
    create(client)
    response = client.post("/v1/workspaces/w1/runs", json={"input": "x" * 2_000_000})
    assert response.status_code == 413 and "limit" in response.json()["error"]
    assert client.get("/v1/workspaces/w1/events").json() == []


def test_events_unknown_type_and_cursor_beyond_head(client: httpx.Client) -> None:
    create(client)
    assert client.get("/v1/workspaces/w1/events", params={"types": "nope"}).status_code == 400
    assert client.get("/v1/workspaces/w1/events", params={"after": 5}).status_code == 400


async def test_websocket_reconnect_resumes_without_loss_or_duplicates(server: ServerThread) -> None:
    async with httpx.AsyncClient(base_url=server.url, trust_env=False) as client:
        await client.post("/v1/workspaces", json={"id": "w1"})
        ws_url = server.url.replace("http", "ws") + "/v1/workspaces/w1/events"
        seen: list[int] = []
        runs = []
        async with websockets.connect(f"{ws_url}?after=0&types=run_queued,completed") as socket:
            for i in range(3):
                runs.append(
                    (await client.post("/v1/workspaces/w1/runs", json={"input": f"r{i}"})).json()[
                        "run"
                    ]
                )
            while len(seen) < 2:
                seen.append(json.loads(await socket.recv())["seq"])
        # Disconnected: more happens while nobody listens.
        for i in range(3, 6):
            runs.append(
                (await client.post("/v1/workspaces/w1/runs", json={"input": f"r{i}"})).json()["run"]
            )
        async with websockets.connect(
            f"{ws_url}?after={seen[-1]}&types=run_queued,completed"
        ) as socket:
            completed: set[str] = set()
            while len(completed) < 6:
                event = json.loads(await asyncio.wait_for(socket.recv(), 20))
                seen.append(event["seq"])
                if event["type"] == "completed":
                    completed.add(event["run"])
        assert seen == sorted(set(seen)), "events repeated or out of order"
        everything = (
            await client.get("/v1/workspaces/w1/events", params={"types": "run_queued,completed"})
        ).json()
        assert [e["seq"] for e in everything] == seen
        assert completed == set(runs)


async def test_websocket_bad_cursor_closes_with_a_reason(server: ServerThread) -> None:
    async with httpx.AsyncClient(base_url=server.url, trust_env=False) as client:
        await client.post("/v1/workspaces", json={"id": "w1"})
    url = server.url.replace("http", "ws") + "/v1/workspaces/w1/events?after=99"
    async with websockets.connect(url) as socket:
        with pytest.raises(websockets.ConnectionClosedError) as info:
            await socket.recv()
    assert info.value.rcvd is not None and info.value.rcvd.code == 4400
    assert "beyond the head" in info.value.rcvd.reason


def test_sse_streams_events_and_resumes_from_last_event_id(client: httpx.Client) -> None:
    create(client)
    run = client.post("/v1/workspaces/w1/runs", json={"input": "sse"}).json()["run"]
    wait_for_status(client, run, {"completed"})
    ids = []
    with client.stream(
        "GET",
        "/v1/workspaces/w1/events",
        headers={"accept": "text/event-stream", "last-event-id": "2"},
    ) as stream:
        for line in stream.iter_lines():
            if line.startswith("id: "):
                ids.append(int(line[4:]))
            if line == "event: completed":
                break
    assert ids == [3, 4, 5, 6]
