"""The gateway's WebSocket mode, driven by the official SDK's `responses.connect()`."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets
from gateway_support import TOOLS, ledger, make_workspace, settled_ledger
from openai import AsyncOpenAI
from openai.types.responses.responses_server_event import ResponsesServerEvent
from pydantic import TypeAdapter

from core_support import ServerThread
from mezzo.server import gateway_ws
from mezzo.stub.server import StubServer

SERVER_EVENT = TypeAdapter(ResponsesServerEvent)
LOOP_PROMPT = "\n".join(f'/call read {{"path": "f{i}.txt"}}' for i in range(6))


async def turn(connection: Any) -> list[Any]:
    """Every event of one response, validated strictly against the SDK's server-event types."""
    events = []
    while True:
        raw = await asyncio.wait_for(connection.recv_bytes(), 10)
        event = SERVER_EVENT.validate_python(json.loads(raw))
        events.append(event)
        if event.type in ("response.completed", "response.incomplete", "response.failed", "error"):
            return events


def ws_url(server: ServerThread) -> str:
    return server.url.replace("http://", "ws://") + "/v1/responses"


async def test_tool_loop_over_one_connection_from_its_cache(
    aclient: AsyncOpenAI, gw_server: ServerThread, workspace: str, stub: StubServer
) -> None:
    served = []
    async with aclient.responses.connect() as connection:
        await connection.response.create(
            model="stub-model", input=LOOP_PROMPT, tools=TOOLS, store=False
        )
        previous = (await turn(connection))[-1].response
        served.append(previous)
        paths = []
        while previous.output[0].type == "function_call":
            call = previous.output[0]
            paths.append(json.loads(call.arguments)["path"])
            await connection.response.create(
                model="stub-model",
                previous_response_id=previous.id,
                input=[
                    {
                        "type": "function_call_output",
                        "call_id": call.call_id,
                        "output": f"contents of {paths[-1]}",
                    }
                ],
                tools=TOOLS,
                store=False,
            )
            events = await turn(connection)
            assert [e.sequence_number for e in events] == list(range(len(events)))
            previous = events[-1].response
            served.append(previous)
    assert paths == [f"f{i}.txt" for i in range(6)]
    assert previous.output_text == "echo: contents of f5.txt"
    inputs = [r.usage.input_tokens for r in served]
    assert inputs == sorted(inputs) and len(set(inputs)) == 7
    budget = settled_ledger(gw_server, workspace, sum(r.usage.total_tokens for r in served))
    assert budget["committed"] == sum(r.usage.total_tokens for r in served)
    assert budget["reserved"] == 0
    # Upstream, the connection kept one WebSocket of its own and sent only the new items.
    stats = stub.stats()
    assert stats["ws_connections"] == 1 and stats["by_path"] == {"ws:/v1/responses": 7}
    assert [e["input_tokens"] for e in stats["log"]] == inputs
    # store=false: the chain lived only on that connection.
    async with aclient.responses.connect() as connection:
        await connection.response.create(
            model="stub-model", previous_response_id=previous.id, input="more"
        )
        (error,) = await turn(connection)
    assert error.type == "error" and error.status == 400
    assert error.error.code == "previous_response_not_found"


async def test_stored_responses_continue_on_a_new_connection_and_over_http(
    aclient: AsyncOpenAI,
) -> None:
    first = await aclient.responses.create(model="stub-model", input="remember me")
    async with aclient.responses.connect() as connection:
        await connection.response.create(
            model="stub-model", previous_response_id=first.id, input="next"
        )
        second = (await turn(connection))[-1].response
    assert second.output_text == "echo: next"
    assert second.usage.input_tokens > first.usage.input_tokens
    third = await aclient.responses.create(
        model="stub-model", previous_response_id=second.id, input="third"
    )
    assert third.usage.input_tokens > second.usage.input_tokens
    assert (await aclient.responses.retrieve(second.id)).output_text == "echo: next"


async def test_warm_up_without_generating_charges_nothing(
    aclient: AsyncOpenAI, gw_server: ServerThread, workspace: str, stub: StubServer
) -> None:
    async with aclient.responses.connect() as connection:
        await connection.response.create(
            model="stub-model", input="context", generate=False, store=False
        )
        events = await turn(connection)
        assert [e.type for e in events] == ["response.created", "response.completed"]
        warm = events[-1].response
        assert warm.output == [] and warm.usage.output_tokens == 0
        assert ledger(gw_server, workspace)["committed"] == 0 and stub.stats()["log"] == []
        await connection.response.create(
            model="stub-model", previous_response_id=warm.id, input="go", store=False
        )
        answer = (await turn(connection))[-1].response
    assert answer.output_text == "echo: go"
    assert answer.usage.input_tokens > warm.usage.input_tokens


async def test_bad_frames_get_error_events_and_the_connection_stays_useful(
    gw_server: ServerThread, workspace: str, stub: StubServer
) -> None:
    headers = {"X-Mezzo-Workspace": workspace}
    big = json.dumps({"type": "response.create", "model": "stub-model", "input": "x" * 1_100_000})
    async with websockets.connect(
        ws_url(gw_server), additional_headers=headers, max_size=None
    ) as socket:
        refusals = []
        for frame in [
            "{nope",
            json.dumps({"type": "session.update"}),
            json.dumps({"type": "response.create"}),
            json.dumps(
                {"type": "response.create", "model": "stub-model", "input": [{"type": "mystery"}]}
            ),
            json.dumps(
                {
                    "type": "response.create",
                    "model": "stub-model",
                    "input": "x",
                    "previous_response_id": "resp_missing",
                }
            ),
            json.dumps({"type": "response.create", "model": "nope", "input": "x"}),
            big,
        ]:
            await socket.send(frame)
            error = json.loads(await socket.recv())
            assert error["type"] == "error"
            refusals.append((error["status"], error["error"]["code"]))
        assert refusals == [
            (400, "invalid_json"),
            (400, "unknown_event_type"),
            (400, "missing_required_parameter"),
            (400, "unsupported_value"),
            (400, "previous_response_not_found"),
            (404, "model_not_found"),
            (400, "message_too_large"),
        ]
        await socket.send(
            json.dumps({"type": "response.create", "model": "stub-model", "input": "still here"})
        )
        while (event := json.loads(await socket.recv()))["type"] != "response.completed":
            pass
    assert event["response"]["output"][0]["content"][0]["text"] == "echo: still here"
    assert len(stub.stats()["log"]) == 1
    charged = event["response"]["usage"]["total_tokens"]
    assert settled_ledger(gw_server, workspace, charged)["committed"] == charged


async def test_one_response_in_flight_and_a_disconnect_is_charged_once(
    gw_server: ServerThread, workspace: str, stub: StubServer
) -> None:
    stub.configure(tokens_per_second=50, reply_tokens=500)
    headers = {"X-Mezzo-Workspace": workspace}
    async with websockets.connect(ws_url(gw_server), additional_headers=headers) as socket:
        await socket.send(
            json.dumps({"type": "response.create", "model": "stub-model", "input": "long"})
        )
        while json.loads(await socket.recv())["type"] != "response.output_text.delta":
            pass
        await socket.send(
            json.dumps({"type": "response.create", "model": "stub-model", "input": "again"})
        )
        while (event := json.loads(await socket.recv()))["type"] != "error":
            assert event["type"] == "response.output_text.delta"
        assert event["error"]["code"] == "response_already_in_progress"
    stub.wait_for(lambda s: s["streams_open"] == 0)
    for _ in range(100):
        budget = ledger(gw_server, workspace)
        if budget["reserved"] == 0:
            break
        await asyncio.sleep(0.05)
    assert budget["reserved"] == 0 and 0 < budget["committed"] < 500
    assert len(stub.stats()["log"]) == 1


async def test_budget_exhaustion_mid_conversation_is_an_error_event(
    gw_server: ServerThread, stub: StubServer
) -> None:
    workspace = make_workspace(gw_server, budget_tokens=500, fallback_behavior="fail")
    sdk = AsyncOpenAI(
        base_url=f"{gw_server.url}/v1",
        api_key="x",
        max_retries=0,
        default_headers={"X-Mezzo-Workspace": workspace},
    )
    served = []
    async with sdk.responses.connect() as connection:
        previous = None
        for step in range(50):
            await connection.response.create(
                model="stub-model",
                input=f"step {step} " + "words " * 20,
                previous_response_id=previous,
                store=False,
            )
            last = (await turn(connection))[-1]
            if last.type == "error":
                break
            served.append(last.response)
            previous = last.response.id
        assert last.type == "error" and last.status == 429
        assert last.error.code == "insufficient_quota"
        assert "budget exhausted" in (last.error.message or "")
        # The socket is still open: a request too large for what is left gets the same error.
        await connection.response.create(model="stub-model", input="words " * 200, store=False)
        (again,) = await turn(connection)
        assert again.type == "error" and again.error.code == "insufficient_quota"
    await sdk.close()
    assert len(served) >= 2
    budget = settled_ledger(gw_server, workspace, sum(r.usage.total_tokens for r in served))
    assert budget["committed"] == sum(r.usage.total_tokens for r in served) <= 500
    assert budget["reserved"] == 0


async def test_fallback_routing_is_visible_on_the_socket(
    gw_server: ServerThread, workspace: str, stub: StubServer
) -> None:
    sdk = AsyncOpenAI(
        base_url=f"{gw_server.url}/v1",
        api_key="x",
        max_retries=0,
        default_headers={"X-Mezzo-Workspace": workspace, "X-Mezzo-Priority": "low"},
    )
    async with sdk.responses.connect() as connection:
        models = []
        for text in ("one", "two"):
            await connection.response.create(model="limited", input=text, store=False)
            events = await turn(connection)
            models.append(events[-1].response.model)
    await sdk.close()
    # The module's first test to use `limited` may have spent its one request a minute.
    assert models[-1] == "stub-small"
    assert set(models) <= {"stub-limited", "stub-small"}


async def test_a_failed_turn_evicts_the_cached_response(
    aclient: AsyncOpenAI, stub: StubServer
) -> None:
    async with aclient.responses.connect() as connection:
        await connection.response.create(model="stub-model", input="one", store=False)
        first = (await turn(connection))[-1].response
        stub.configure(fail_503=1.0)
        await connection.response.create(
            model="stub-model", previous_response_id=first.id, input="two", store=False
        )
        failed = (await turn(connection))[-1]
        assert failed.type == "response.failed"
        assert failed.response.error.code == "server_error"
        stub.configure(fail_503=0.0)
        await connection.response.create(
            model="stub-model", previous_response_id=first.id, input="two", store=False
        )
        (evicted,) = await turn(connection)
        assert evicted.error.code == "previous_response_not_found"
        await connection.response.create(model="stub-model", input="fresh", store=False)
        assert (await turn(connection))[-1].response.output_text == "echo: fresh"


async def test_connection_time_limit(aclient: AsyncOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gateway_ws, "MAX_CONNECTION_S", 0.3)
    async with aclient.responses.connect() as connection:
        await connection.response.create(model="stub-model", input="in time", store=False)
        assert (await turn(connection))[-1].type == "response.completed"
        await asyncio.sleep(0.4)
        await connection.response.create(model="stub-model", input="too late", store=False)
        (error,) = await turn(connection)
    assert error.error.code == "websocket_connection_limit_reached"
