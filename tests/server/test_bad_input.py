"""Bad input gets a clear 4xx and writes nothing: deeply nested JSON on every route (the hot
submit route and the gateway's included), integers beyond what the stores hold, ids outside the
id alphabet, cursors that are no seq, values of the wrong JSON type; and a workspace id with
`:` works end to end."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets

from core_support import ServerThread, core_settings
from mezzo.bounds import MAX_JSON_DEPTH, MAX_TOKENS
from mezzo.errors import BadRequest
from mezzo.server.json_body import nests_deeper_than, parse_json
from mezzo.stub.server import StubServer

JSON = {"content-type": "application/json"}
TOOL = {"name": "lookup", "parameters": {"type": "object", "properties": {}}}


@pytest.fixture
def server(tmp_path, stub: StubServer) -> Iterator[ServerThread]:
    with ServerThread(core_settings(tmp_path / "data", stub)) as running:
        yield running


@pytest.fixture
def client(server: ServerThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, trust_env=False, timeout=30) as c:
        yield c


def nested(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


def wait_for(client: httpx.Client, run: str, statuses: set[str]) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while (body := client.get(f"/v1/runs/{run}").json())["status"] not in statuses:
        assert time.monotonic() < deadline, body
        time.sleep(0.05)
    return body


def test_deeply_nested_json_is_a_400_on_every_route(client: httpx.Client) -> None:
    assert client.post("/v1/workspaces", json={"id": "w", "tools": [TOOL]}).status_code == 201
    run = client.post("/v1/workspaces/w/runs", json={"input": "x\n/call lookup"}).json()["run"]
    routes = [
        "/v1/workspaces",
        "/v1/workspaces/w/runs",  # the hot route
        "/v1/workspaces/w/throttle",
        "/v1/workspaces/w/budget",
        f"/v1/runs/{run}/tool_results",
        f"/v1/runs/{run}/cancel",
        f"/v1/runs/{run}/input",
        "/v1/responses",  # the gateway's
        "/v1/responses/input_tokens",
        "/v1/chat/completions",
    ]
    for depth in (50_000, 100_000):
        for route in routes:
            for body in (nested(depth), '{"input": ' + nested(depth) + "}"):
                answer = client.post(route, content=body, headers=JSON)
                assert answer.status_code == 400, (route, depth, answer.status_code)
                error = answer.json()["error"]
                if route.startswith(("/v1/responses", "/v1/chat")):  # OpenAI's error shape
                    assert error["code"] == "invalid_json", error
                    error = error["message"]
                assert f"deeper than {MAX_JSON_DEPTH} levels" in error
    # Just past the limit inside a field is refused; at the limit it is taken.
    schema: Any = {"type": "string"}
    for _ in range(MAX_JSON_DEPTH - 5):  # the body, tools, the tool, parameters and the object
        schema = [schema]
    fits = {"id": "deep", "tools": [{"name": "t", "parameters": {"x": schema}}]}
    assert client.post("/v1/workspaces", json=fits).status_code == 201
    fits["tools"][0]["parameters"] = {"x": [schema]}
    too_deep = client.post("/v1/workspaces", json={**fits, "id": "deeper"})
    assert too_deep.status_code == 400 and client.get("/v1/workspaces/deeper").status_code == 404
    assert wait_for(client, run, {"awaiting_tool"})["version"] > 0  # nothing reached the run


def test_the_depth_check_reads_json_as_a_parser_does() -> None:
    assert not nests_deeper_than(b'["' + b"[" * 500 + b'"]', 2)  # brackets in a string
    assert not nests_deeper_than(b'["\\"' + b"[" * 500 + b'", "\\\\"]', 2)  # escaped quotes
    assert nests_deeper_than(b'[["\\\\"]]', 1)  # an escaped backslash ends no string early
    assert nests_deeper_than(b"[" * 100, 64)  # unbalanced, so no JSON either
    assert parse_json(nested(2)) == [[1]]
    assert isinstance(parse_json(nested(MAX_JSON_DEPTH)), list)  # at the limit: parsed
    with pytest.raises(BadRequest, match="deeper than"):
        parse_json(nested(MAX_JSON_DEPTH + 1))
    with pytest.raises(BadRequest, match="not valid JSON"):
        parse_json(b'{"a": ')


def test_integers_beyond_the_stores_are_refused_and_leave_nothing(client: httpx.Client) -> None:
    for budget in (10**30, 2**63, MAX_TOKENS + 1):
        answer = client.post("/v1/workspaces", json={"id": "big", "budget_tokens": budget})
        assert answer.status_code == 422, (budget, answer.text)
        assert client.get("/v1/workspaces/big").status_code == 404
    created = client.post("/v1/workspaces", json={"id": "big", "budget_tokens": 5})
    assert created.status_code == 201, created.text  # no half-made record in the way
    largest = client.post("/v1/workspaces", json={"id": "max", "budget_tokens": MAX_TOKENS})
    assert largest.json()["budget"]["budget_tokens"] == MAX_TOKENS
    for tokens in (2**63, 10**30, MAX_TOKENS + 1):
        answer = client.post("/v1/workspaces/big/budget", json={"add_tokens": tokens})
        assert answer.status_code == 422, (tokens, answer.text)
    for path in ("/v1/workspaces/big/events", "/v1/workspaces/big/events?after=1"):
        assert client.get(f"{path}{'&' if '?' in path else '?'}after={2**63}").status_code == 422


def test_a_top_up_past_the_largest_budget_is_refused(client: httpx.Client) -> None:
    client.post("/v1/workspaces", json={"id": "small", "budget_tokens": 10})
    run = client.post("/v1/workspaces/small/runs", json={"input": "more than ten tokens"})
    assert wait_for(client, run.json()["run"], {"suspended"})["status"] == "suspended"
    answer = client.post("/v1/workspaces/small/budget", json={"add_tokens": MAX_TOKENS})
    assert answer.status_code == 400 and "most a workspace can have" in answer.json()["error"]
    assert client.get("/v1/workspaces/small").json()["budget"]["budget_tokens"] == 10


def test_values_of_the_wrong_json_type_are_refused(client: httpx.Client) -> None:
    client.post("/v1/workspaces", json={"id": "w"})
    for path, body in (
        ("/v1/workspaces/w/throttle", {"rate": True}),
        ("/v1/workspaces/w/throttle", {"rate": "0.5"}),
        ("/v1/workspaces", {"id": "x", "budget_tokens": True}),
        ("/v1/workspaces", {"id": "x", "budget_tokens": "5"}),
        ("/v1/workspaces", {"id": "x", "human_input": "yes"}),
        ("/v1/workspaces/w/runs", {"input": "x", "max_steps": "3"}),
        ("/v1/workspaces/w/runs", {"input": 5}),
    ):
        answer = client.post(path, json=body)
        assert answer.status_code == 422, (path, body, answer.text)
    assert client.get("/v1/workspaces/w").json()["throttle_rate"] == 1.0
    assert client.get("/v1/workspaces/x").status_code == 404


def test_ids_outside_the_alphabet_are_4xx_never_500(client: httpx.Client) -> None:
    client.post("/v1/workspaces", json={"id": "w"})
    for file_id in ("a b", ".incoming", "%2E%2E", "x" * 16, "a%2Fb", "x" * 200, "é", "~"):
        for method in ("GET", "DELETE"):
            answer = client.request(method, f"/v1/workspaces/w/files/{file_id}")
            assert answer.status_code in (404, 422), (method, file_id, answer.text)
            assert answer.json()["error"]
    for workspace in ("a b", ".hidden", "%2E%2E", "x" * 129, "a~b"):
        for method, path in (
            ("GET", f"/v1/workspaces/{workspace}"),
            ("GET", f"/v1/workspaces/{workspace}/files"),
            ("GET", f"/v1/workspaces/{workspace}/events"),
            ("POST", f"/v1/workspaces/{workspace}/runs"),
        ):
            body = {"input": "x"} if method == "POST" else None
            answer = client.request(method, path, json=body)
            assert answer.status_code in (404, 422), (path, answer.status_code, answer.text)
    for workspace in ("a/b", "a b", "-a", "", "a~b"):
        answer = client.post("/v1/workspaces", json={"id": workspace})
        assert answer.status_code == 422, (workspace, answer.text)
    for run in ("a b", "..", "x" * 129):
        assert client.get(f"/v1/runs/{run}").status_code in (404, 422)


def test_a_workspace_id_with_a_colon_works_end_to_end(client: httpx.Client) -> None:
    assert client.post("/v1/workspaces", json={"id": "team:prod"}).status_code == 201
    uploaded = client.post(
        "/v1/workspaces/team:prod/files", params={"name": "notes.txt"}, content=b"a\nb\n"
    )
    assert uploaded.status_code == 201, uploaded.text
    file_id = uploaded.json()["id"]
    assert [f["id"] for f in client.get("/v1/workspaces/team:prod/files").json()] == [file_id]
    assert client.get(f"/v1/workspaces/team:prod/files/{file_id}").status_code == 200
    run = client.post("/v1/workspaces/team:prod/runs", json={"input": "hi"}).json()["run"]
    assert wait_for(client, run, {"completed", "failed"})["status"] == "completed"
    events = client.get("/v1/workspaces/team:prod/events").json()
    assert events[-1]["type"] == "completed" and events[-1]["workspace"] == "team:prod"
    assert client.delete(f"/v1/workspaces/team:prod/files/{file_id}").status_code == 204
    assert client.get("/v1/workspaces/team:prod/files").json() == []


def test_cursors_that_are_no_seq_are_refused(server: ServerThread, client: httpx.Client) -> None:
    client.post("/v1/workspaces", json={"id": "w"})
    sse = {"accept": "text/event-stream"}
    for last_event_id in ("9" * 5000, "²", "-1", "1e3", "abc", "9" * 20):
        headers = {**sse, "last-event-id": last_event_id.encode()}  # as sent: UTF-8
        answer = client.get("/v1/workspaces/w/events", headers=headers)
        assert answer.status_code == 400, (last_event_id[:10], answer.text)
        assert "Last-Event-ID" in answer.json()["error"]

    async def closed_with(after: str) -> int:
        url = f"{server.url.replace('http', 'ws')}/v1/workspaces/w/events?after={after}"
        async with websockets.connect(url) as socket:
            with pytest.raises(websockets.ConnectionClosed) as info:
                await asyncio.wait_for(socket.recv(), 10)
        assert info.value.rcvd is not None
        return info.value.rcvd.code

    for after in ("9" * 5000, "%C2%B2", "-1", "x"):
        assert asyncio.run(closed_with(after)) == 4400, after


def test_a_405_names_every_method_of_the_path(client: httpx.Client) -> None:
    for path, methods in (
        ("/v1/workspaces", {"GET", "POST"}),
        ("/v1/workspaces/w/files", {"GET", "POST"}),
        ("/v1/workspaces/w/files/f1", {"GET", "DELETE"}),
    ):
        answer = client.request("PATCH", path)
        assert answer.status_code == 405
        allowed = {m.strip() for m in answer.headers["allow"].split(",")} - {"HEAD"}
        assert allowed == methods, (path, answer.headers["allow"])
