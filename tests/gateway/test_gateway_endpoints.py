"""Every path under /v1 answers in OpenAI's error shape; models.retrieve, response deletion,
input items and a token count without a model work through the SDK; one log line per
request (issue 16, items 4 and 5)."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest
from gateway_support import TOOLS
from openai import OpenAI

from core_support import ServerThread, capture_logs


def openai_error(answer: httpx.Response) -> dict[str, Any]:
    body = answer.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"message", "type", "param", "code"}, body
    return dict(body["error"])


def test_unknown_paths_and_methods_answer_in_openai_shape(
    client: OpenAI, gw_server: ServerThread
) -> None:
    with pytest.raises(openai.NotFoundError) as embeddings:
        client.embeddings.create(model="stub-model", input="x")
    assert embeddings.value.code == "unknown_url"
    for method, path, status in [
        ("POST", "/v1/embeddings", 404),
        ("GET", "/v1/files", 404),
        ("POST", "/v1/audio/speech", 404),
        ("GET", "/v1/chat/completions", 405),
        ("PUT", "/v1/responses", 405),
        ("PATCH", "/v1/models", 405),
    ]:
        answer = httpx.request(method, gw_server.url + path, trust_env=False)
        assert answer.status_code == status, (method, path)
        error = openai_error(answer)
        assert error["code"] == ("unknown_url" if status == 404 else "method_not_allowed")
        if status == 405:
            assert answer.headers["allow"]
    # mezzo's own routes are untouched by the fallback.
    assert httpx.get(f"{gw_server.url}/healthz", trust_env=False).json() == {"status": "ok"}


def test_models_retrieve(client: OpenAI) -> None:
    assert client.models.retrieve("stub-model").id == "stub-model"
    assert client.models.retrieve("default").owned_by == "mezzo"
    with pytest.raises(openai.NotFoundError) as missing:
        client.models.retrieve("gpt-nope")
    assert missing.value.code == "model_not_found"


def test_delete_and_input_items(client: OpenAI) -> None:
    first = client.responses.create(
        model="stub-model", instructions="Be brief.", input='/call read {"path": "a"}', tools=TOOLS
    )
    call = first.output[0]
    assert call.type == "function_call"
    second = client.responses.create(
        model="stub-model",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "A"}],
        tools=TOOLS,
    )
    listed = client.responses.input_items.list(second.id, order="asc")
    kinds = [item.type for item in listed.data]
    assert kinds == ["message", "function_call", "function_call_output"]
    assert listed.data[0].content[0].text == '/call read {"path": "a"}'  # type: ignore[union-attr]
    newest = client.responses.input_items.list(second.id, limit=1)
    assert newest.data[0].type == "function_call_output" and newest.has_more
    rest = client.responses.input_items.list(second.id, limit=5, after=newest.data[0].id)
    assert [item.type for item in rest.data] == ["function_call", "message"]
    client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(first.id)
    with pytest.raises(openai.BadRequestError) as gone:
        client.responses.create(model="stub-model", previous_response_id=first.id, input="x")
    assert gone.value.code == "previous_response_not_found"
    assert client.responses.retrieve(second.id).id == second.id


def test_input_tokens_without_a_model_count_on_the_default_route(client: OpenAI) -> None:
    body: dict[str, Any] = {"input": "How many tokens is this?", "tools": TOOLS}
    without = client.responses.input_tokens.count(**body)
    named = client.responses.input_tokens.count(model="stub-model", **body)
    assert without.input_tokens == named.input_tokens > 0


def test_one_log_line_per_request_without_bodies_or_keys(
    gw_server: ServerThread, workspace: str
) -> None:
    secret = "sk-do-not-log-me"
    with capture_logs() as logs:
        answer = httpx.post(
            f"{gw_server.url}/v1/responses?token=also-secret",
            json={"model": "stub-model", "input": "the body text", "store": "nope"},
            headers={"X-Mezzo-Workspace": workspace, "Authorization": f"Bearer {secret}"},
            trust_env=False,
        )
    assert answer.status_code == 400
    # (Lines of other requests still ending on the server's thread may be captured too.)
    lines = [
        e
        for e in logs
        if e.get("event") == "request" and e.get("request_id") == answer.headers["x-request-id"]
    ]
    assert len(lines) == 1
    line = lines[0]
    assert line["log_level"] == "info"
    assert (line["method"], line["path"], line["status"]) == ("POST", "/v1/responses", 400)
    assert line["duration_ms"] >= 0 and "tenant" in line
    assert secret not in repr(logs) and "also-secret" not in repr(logs)
    assert "the body text" not in repr(logs)
