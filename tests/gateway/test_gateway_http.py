"""The gateway over HTTP with the official `openai` SDK: Responses (streamed and not) and Chat
Completions, tool loops over several turns, stored responses, errors, budget, fallback."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from gateway_support import TOOLS, gateway_settings, ledger, make_workspace, workspace_events
from openai import OpenAI

from core_support import ServerThread
from mezzo.stub.server import StubServer

LOOP_PROMPT = (
    '/call read {"path": "a.txt"}\n/call read {"path": "b.txt"}\n/call read {"path": "c.txt"}'
)


def test_tool_loop_with_previous_response_id_is_charged_once_per_response(
    client: OpenAI, gw_server: ServerThread, workspace: str, stub: StubServer
) -> None:
    response = client.responses.create(model="stub-model", input=LOOP_PROMPT, tools=TOOLS)
    responses = [response]
    paths = []
    while response.output[0].type == "function_call":
        call = response.output[0]
        paths.append(json.loads(call.arguments)["path"])
        response = client.responses.create(
            model="stub-model",
            previous_response_id=response.id,
            input=[
                {"type": "function_call_output", "call_id": call.call_id, "output": call.arguments}
            ],
            tools=TOOLS,
        )
        responses.append(response)
    assert paths == ["a.txt", "b.txt", "c.txt"]
    assert response.output_text == 'echo: {"path": "c.txt"}'
    assert response.model == "stub-model"
    # The stub saw the whole conversation each time: its input grew every turn.
    inputs = [r.usage.input_tokens for r in responses]
    assert inputs == sorted(inputs) and len(set(inputs)) == 4
    budget = ledger(gw_server, workspace)
    assert budget["committed"] == sum(r.usage.total_tokens for r in responses)
    assert budget["reserved"] == 0
    assert len(stub.stats()["log"]) == 4


def test_streamed_tool_loop_sending_the_full_history(client: OpenAI) -> None:
    history: list[Any] = [{"role": "user", "content": LOOP_PROMPT}]
    calls = 0
    while True:
        with client.responses.stream(model="stub-model", input=history, tools=TOOLS) as stream:
            kinds = [event.type for event in stream]
            final = stream.get_final_response()
        assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
        item = final.output[0]
        if item.type != "function_call":
            break
        calls += 1
        assert "response.function_call_arguments.delta" in kinds
        history += [
            {
                "type": "function_call",
                "call_id": item.call_id,
                "name": item.name,
                "arguments": item.arguments,
            },
            {"type": "function_call_output", "call_id": item.call_id, "output": f"out {calls}"},
        ]
    assert calls == 3
    assert "response.output_text.delta" in kinds
    assert final.output_text == "echo: out 3"


def test_stored_response_is_retrieved_and_continued_by_a_new_server(
    tmp_path: Path, stub: StubServer
) -> None:
    settings = gateway_settings(tmp_path / "data", stub)
    with ServerThread(settings, workers=False) as first:
        sdk = OpenAI(base_url=f"{first.url}/v1", api_key="x", max_retries=0)
        kept = sdk.responses.create(model="stub-model", input="remember this")
        unstored = sdk.responses.create(model="stub-model", input="forget", store=False)
        assert sdk.responses.retrieve(kept.id).output_text == "echo: remember this"
        with pytest.raises(openai.NotFoundError):
            sdk.responses.retrieve(unstored.id)
    with ServerThread(settings, workers=False) as second:
        sdk = OpenAI(base_url=f"{second.url}/v1", api_key="x", max_retries=0)
        assert sdk.responses.retrieve(kept.id).id == kept.id
        follow = sdk.responses.create(
            model="stub-model", previous_response_id=kept.id, input="and now?"
        )
        assert follow.previous_response_id == kept.id
        assert follow.usage.input_tokens > kept.usage.input_tokens + 3
        with pytest.raises(openai.BadRequestError) as refused:
            sdk.responses.create(model="stub-model", previous_response_id=unstored.id, input="x")
        assert refused.value.code == "previous_response_not_found"


def test_input_tokens_match_what_the_model_reports(client: OpenAI) -> None:
    body: dict[str, Any] = {
        "model": "stub-model",
        "instructions": "Be brief.",
        "input": [{"role": "user", "content": "How many tokens is this sentence, exactly?"}],
        "tools": TOOLS,
    }
    counted = client.responses.input_tokens.count(**body)
    answered = client.responses.create(**body)
    assert counted.input_tokens == answered.usage.input_tokens
    follow = client.responses.input_tokens.count(
        model="stub-model", previous_response_id=answered.id, input="more", tools=TOOLS
    )
    assert follow.input_tokens > counted.input_tokens


def test_chat_completions_streamed_and_not_with_a_tool_call(
    client: OpenAI, gw_server: ServerThread, workspace: str
) -> None:
    tools: list[Any] = [
        {"type": "function", "function": {k: v for k, v in TOOLS[0].items() if k != "type"}}
    ]
    messages: list[Any] = [{"role": "user", "content": '/call read {"path": "x"}'}]
    first = client.chat.completions.create(model="stub-model", messages=messages, tools=tools)
    (call,) = first.choices[0].message.tool_calls or []
    assert first.choices[0].finish_reason == "tool_calls" and call.function.name == "read"
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "file x"},
    ]
    chunks = list(
        client.chat.completions.create(
            model="stub-model",
            messages=messages,
            tools=tools,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: file x"
    usage = chunks[-1].usage
    assert usage is not None
    assert ledger(gw_server, workspace)["committed"] == (
        first.usage.total_tokens + usage.total_tokens  # type: ignore[union-attr]
    )
    assert {m.id for m in client.models.list()} >= {"default", "stub-model", "stub-small"}


def test_bad_requests_get_openai_errors_and_charge_nothing(
    client: OpenAI, gw_server: ServerThread, workspace: str, stub: StubServer
) -> None:
    with pytest.raises(openai.NotFoundError) as unknown_model:
        client.responses.create(model="gpt-nope", input="hi")
    assert unknown_model.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as malformed:
        client.responses.create(
            model="stub-model",
            input=[
                {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{not json"}
            ],
        )
    assert malformed.value.code == "invalid_value" and "arguments" in str(malformed.value.param)
    with pytest.raises(openai.BadRequestError) as missing:
        client.responses.create(model="stub-model", previous_response_id="resp_nope", input="x")
    assert missing.value.code == "previous_response_not_found"
    with pytest.raises(openai.BadRequestError) as image:
        client.responses.create(
            model="stub-model",
            input=[{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}],
        )
    assert image.value.code == "unsupported_value"
    with pytest.raises(openai.NotFoundError) as other_workspace:
        client.responses.create(
            model="stub-model", input="hi", extra_headers={"X-Mezzo-Workspace": "not-mine"}
        )
    assert other_workspace.value.code == "workspace_not_found"
    raw = httpx.post(f"{gw_server.url}/v1/responses", content=b"{oops", trust_env=False)
    assert raw.status_code == 400 and raw.json()["error"]["code"] == "invalid_json"
    assert ledger(gw_server, workspace) == {
        "budget_tokens": 1_000_000,
        "committed": 0,
        "reserved": 0,
    }
    assert stub.stats()["log"] == []


def test_default_workspace_is_made_per_tenant_on_first_use(gw_server: ServerThread) -> None:
    sdk = OpenAI(base_url=f"{gw_server.url}/v1", api_key="x", max_retries=0)
    raw = sdk.responses.with_raw_response.create(model="stub-model", input="no header")
    assert raw.headers["x-mezzo-workspace"] == "gateway-local"
    assert ledger(gw_server, "gateway-local")["committed"] >= raw.parse().usage.total_tokens


def test_budget_exhaustion_mid_conversation_is_a_clear_429_and_never_overspent(
    gw_server: ServerThread, stub: StubServer
) -> None:
    workspace = make_workspace(
        gw_server, budget_tokens=600, fallback_behavior="fail", alert_thresholds=[0.5]
    )
    sdk = OpenAI(
        base_url=f"{gw_server.url}/v1",
        api_key="x",
        default_headers={"X-Mezzo-Workspace": workspace},
    )  # SDK retries left on
    served = []
    previous = None
    with pytest.raises(openai.RateLimitError) as exhausted:
        for turn in range(50):
            response = sdk.responses.create(
                model="stub-model",
                input=f"turn {turn} " + "words " * 20,
                previous_response_id=previous,
            )
            served.append(response)
            previous = response.id
    assert len(served) >= 2
    assert exhausted.value.code == "insufficient_quota"
    assert "budget exhausted" in exhausted.value.message
    budget = ledger(gw_server, workspace)
    assert budget["committed"] == sum(r.usage.total_tokens for r in served) <= 600
    assert budget["reserved"] == 0
    assert len(stub.stats()["log"]) == len(served)  # the SDK did not retry the refusal
    types = [e["type"] for e in workspace_events(gw_server, workspace)]
    assert types.count("budget_alert") == 1 and "budget_exhausted" in types


def test_low_priority_moves_to_the_fallback_and_the_response_says_so(
    client: OpenAI, gw_server: ServerThread, workspace: str
) -> None:
    low = {"X-Mezzo-Priority": "low"}
    first = client.responses.create(model="limited", input="one", extra_headers=low)
    second = client.responses.create(model="limited", input="two", extra_headers=low)
    assert first.model == "stub-limited"
    assert second.model == "stub-small" and second.output_text == "echo: two"
    routed = [e["data"] for e in workspace_events(gw_server, workspace) if e["type"] == "routed"]
    assert routed == [
        {
            "from_route": "openai:stub-limited",
            "to_route": "openai:stub-small",
            "reason": "wait_exceeds_priority",
            "detail": routed[0]["detail"],
        }
    ]
    chat = client.chat.completions.create(
        model="limited", messages=[{"role": "user", "content": "three"}], extra_headers=low
    )
    assert chat.model == "stub-small"


def test_cancel_stops_a_response_in_flight_and_charges_what_it_used(
    client: OpenAI, gw_server: ServerThread, workspace: str, stub: StubServer
) -> None:
    stub.configure(tokens_per_second=40, reply_tokens=400)
    seen: list[str] = []
    ids: list[str] = []
    started = threading.Event()

    def consume() -> None:
        with client.responses.stream(model="stub-model", input="long") as stream:
            for event in stream:
                seen.append(event.type)
                if event.type == "response.created":
                    ids.append(event.response.id)
                if event.type == "response.output_text.delta":
                    started.set()

    reader = threading.Thread(target=consume)
    reader.start()
    assert started.wait(10)
    assert ledger(gw_server, workspace)["reserved"] > 0
    assert client.responses.retrieve(ids[0]).status == "in_progress"
    cancelled = client.responses.cancel(ids[0])
    assert cancelled.status == "cancelled"
    reader.join(10)
    assert not reader.is_alive()
    assert "response.completed" not in seen
    budget = ledger(gw_server, workspace)
    assert budget["reserved"] == 0 and 0 < budget["committed"] < 400
    assert client.responses.retrieve(ids[0]).status == "cancelled"


def test_an_upstream_failure_is_a_502_and_charges_nothing(
    client: OpenAI, gw_server: ServerThread, workspace: str, stub: StubServer
) -> None:
    stub.configure(fail_500=1.0)
    with pytest.raises(openai.InternalServerError) as failed:
        client.responses.create(model="stub-model", input="hi")
    assert failed.value.status_code == 502 and failed.value.code == "server_error"
    with client.responses.stream(model="stub-model", input="hi") as stream:
        kinds = [event.type for event in stream]
    assert kinds[-1] == "response.failed"
    assert ledger(gw_server, workspace) == {
        "budget_tokens": 1_000_000,
        "committed": 0,
        "reserved": 0,
    }


def test_downgrade_serves_an_exhausted_workspace_from_the_fallback(
    gw_server: ServerThread, stub: StubServer
) -> None:
    workspace = make_workspace(gw_server, budget_tokens=5, fallback_behavior="downgrade")
    sdk = OpenAI(
        base_url=f"{gw_server.url}/v1",
        api_key="x",
        max_retries=0,
        default_headers={"X-Mezzo-Workspace": workspace},
    )
    answer = sdk.responses.create(model="limited", input="cheap please")
    assert answer.model == "stub-small" and answer.output_text == "echo: cheap please"
    with pytest.raises(openai.RateLimitError) as no_fallback:
        sdk.responses.create(model="stub-model", input="the default route has none")
    assert no_fallback.value.code == "insufficient_quota"
    assert ledger(gw_server, workspace) == {"budget_tokens": 5, "committed": 0, "reserved": 0}
    events = workspace_events(gw_server, workspace)
    assert [e["data"]["reason"] for e in events if e["type"] == "routed"] == ["budget_downgrade"]


def test_a_client_leaving_a_stream_midway_is_charged_for_what_streamed(
    gw_server: ServerThread, workspace: str, stub: StubServer
) -> None:
    stub.configure(tokens_per_second=40, reply_tokens=400)
    body = {"model": "stub-model", "input": "long", "stream": True}
    headers = {"X-Mezzo-Workspace": workspace}
    with (
        httpx.Client(trust_env=False) as http,
        http.stream("POST", f"{gw_server.url}/v1/responses", json=body, headers=headers) as sse,
    ):
        for line in sse.iter_lines():
            if "response.output_text.delta" in line:
                break
    deadline = time.monotonic() + 10
    while (budget := ledger(gw_server, workspace))["reserved"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert budget["reserved"] == 0 and 0 < budget["committed"] < 400


def in_flight_ids(server: ServerThread) -> list[str]:
    """Ids of the responses the server is producing (a client that does not stream learns its
    id only with the answer; this test reads them from the server's gateway)."""
    app = server.server.config.app
    while not hasattr(app, "state"):
        app = app.app
    return list(app.state.gateway.in_flight.ids())


def test_cancel_stops_a_response_that_is_not_streamed(
    client: OpenAI, gw_server: ServerThread, workspace: str, stub: StubServer
) -> None:
    stub.configure(tokens_per_second=40, reply_tokens=400)
    answers: list[Any] = []
    reader = threading.Thread(
        target=lambda: answers.append(client.responses.create(model="stub-model", input="long"))
    )
    reader.start()
    deadline = time.monotonic() + 10
    while not in_flight_ids(gw_server) and time.monotonic() < deadline:
        time.sleep(0.02)
    (response_id,) = in_flight_ids(gw_server)
    time.sleep(0.3)
    assert ledger(gw_server, workspace)["reserved"] > 0
    (upstream,) = stub.stats()["log"]
    assert upstream["stream"] is False  # the upstream call is not streamed either
    assert client.responses.cancel(response_id).status == "cancelled"
    reader.join(10)
    assert answers and answers[0].status == "cancelled" and answers[0].id == response_id
    budget = ledger(gw_server, workspace)
    assert budget["reserved"] == 0 and 0 < budget["committed"] < 400
    assert client.responses.retrieve(response_id).status == "cancelled"
