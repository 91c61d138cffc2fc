"""The stub's WebSocket mode of the Responses API, driven by the official SDK's `connect()`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import websockets
from openai import AsyncOpenAI
from openai.types.responses.responses_server_event import ResponsesServerEvent
from pydantic import TypeAdapter

from mezzo.stub.config import StubConfig
from mezzo.stub.server import StubServer

SERVER_EVENT = TypeAdapter(ResponsesServerEvent)


@pytest.fixture(scope="module")
def server() -> Iterator[StubServer]:
    with StubServer() as stub:
        yield stub


@pytest.fixture
def stub(server: StubServer) -> StubServer:
    server.configure(**StubConfig().model_dump())
    server.reset()
    return server


@pytest.fixture
async def client(stub: StubServer) -> AsyncIterator[AsyncOpenAI]:
    client = AsyncOpenAI(base_url=stub.base_url, api_key="ws-key", max_retries=0)
    yield client
    await client.close()


async def turn(connection: Any) -> list[Any]:
    """Every event of one response, validated strictly against the SDK's server-event types."""
    events = []
    while True:
        raw = await asyncio.wait_for(connection.recv_bytes(), 10)
        event = SERVER_EVENT.validate_python(json.loads(raw))
        events.append(event)
        if event.type in ("response.completed", "response.incomplete", "response.failed", "error"):
            return events


async def test_tool_loop_over_one_connection_with_store_false(
    client: AsyncOpenAI, stub: StubServer
) -> None:
    prompt = '/call read {"path": "a.txt"}\n/call read {"path": "b.txt"}'
    async with client.responses.connect() as connection:
        await connection.response.create(model="stub-model", input=prompt, store=False)
        previous = (await turn(connection))[-1].response
        outputs = []
        for step in range(3):
            item = previous.output[0]
            if item.type != "function_call":
                break
            outputs.append(json.loads(item.arguments)["path"])
            await connection.response.create(
                model="stub-model",
                previous_response_id=previous.id,
                input=[
                    {
                        "type": "function_call_output",
                        "call_id": item.call_id,
                        "output": f"contents {step}",
                    }
                ],
                store=False,
            )
            events = await turn(connection)
            assert [e.sequence_number for e in events] == list(range(len(events)))
            previous = events[-1].response
    assert outputs == ["a.txt", "b.txt"]
    assert previous.output_text == "echo: contents 1"
    stats = stub.stats()
    assert stats["ws_connections"] == 1 and stats["by_path"] == {"ws:/v1/responses": 3}
    inputs = [entry["input_tokens"] for entry in stats["log"]]
    assert inputs == sorted(inputs) and len(set(inputs)) == 3

    # store=false: the chain lived only on that connection.
    async with client.responses.connect() as connection:
        await connection.response.create(
            model="stub-model", previous_response_id=previous.id, input="more"
        )
        (error,) = await turn(connection)
    assert error.type == "error" and error.status == 400
    assert error.error.code == "previous_response_not_found"


async def test_stored_responses_continue_on_a_new_connection(client: AsyncOpenAI) -> None:
    first = await client.responses.create(model="stub-model", input="remember me")
    async with client.responses.connect() as connection:
        await connection.response.create(
            model="stub-model", previous_response_id=first.id, input="next"
        )
        events = await turn(connection)
    assert events[-1].response.output_text == "echo: next"
    assert events[-1].response.usage.input_tokens > first.usage.input_tokens


async def test_warm_up_without_generating(client: AsyncOpenAI, stub: StubServer) -> None:
    async with client.responses.connect() as connection:
        await connection.response.create(
            model="stub-model", input="context", generate=False, store=False
        )
        events = await turn(connection)
        assert [e.type for e in events] == ["response.created", "response.completed"]
        warm = events[-1].response
        assert warm.output == [] and warm.usage.output_tokens == 0
        await connection.response.create(
            model="stub-model", previous_response_id=warm.id, input="go", store=False
        )
        answer = (await turn(connection))[-1].response
    assert answer.output_text == "echo: go"
    assert answer.usage.input_tokens > warm.usage.input_tokens


async def test_errors_keep_the_connection_and_evict_the_cache(
    client: AsyncOpenAI, stub: StubServer
) -> None:
    async with client.responses.connect() as connection:
        await connection.response.create(model="stub-model", input="one", store=False)
        first = (await turn(connection))[-1].response
        stub.configure(fail_503=1.0)
        await connection.response.create(
            model="stub-model", previous_response_id=first.id, input="two", store=False
        )
        (failed,) = await turn(connection)
        assert failed.status == 503 and failed.error.code == "overloaded"
        stub.configure(fail_503=0.0)
        await connection.response.create(
            model="stub-model", previous_response_id=first.id, input="two", store=False
        )
        (evicted,) = await turn(connection)
        assert evicted.error.code == "previous_response_not_found"
        await connection.response.create(model="stub-model", input="fresh", store=False)
        assert (await turn(connection))[-1].response.output_text == "echo: fresh"


async def test_rate_limit_arrives_as_an_error_event_with_headers(
    client: AsyncOpenAI, stub: StubServer
) -> None:
    stub.configure(rpm=1)
    async with client.responses.connect() as connection:
        await connection.response.create(model="stub-model", input="a")
        assert (await turn(connection))[-1].type == "response.completed"
        await connection.response.create(model="stub-model", input="b")
        (limited,) = await turn(connection)
    assert limited.status == 429 and limited.error.code == "rate_limit_exceeded"
    assert limited.error.headers["x-ratelimit-remaining-requests"] == "0"
    assert 55_000 < int(limited.error.headers["retry-after-ms"]) <= 60_000


async def test_bad_frames_get_error_events(stub: StubServer) -> None:
    url = stub.base_url.replace("http://", "ws://") + "/responses"
    async with websockets.connect(url) as socket:
        for frame in [
            "{nope",
            json.dumps({"type": "session.update"}),
            json.dumps({"type": "response.create"}),
        ]:
            await socket.send(frame)
            error = json.loads(await socket.recv())
            assert error["type"] == "error" and error["status"] == 400
        await socket.send(
            json.dumps({"type": "response.create", "model": "m", "input": "still here"})
        )
        while (event := json.loads(await socket.recv()))["type"] != "response.completed":
            pass
    assert event["response"]["output"][0]["content"][0]["text"] == "echo: still here"


async def test_one_response_in_flight_and_disconnect_is_seen(stub: StubServer) -> None:
    stub.configure(tokens_per_second=50, reply_tokens=500)
    url = stub.base_url.replace("http://", "ws://") + "/responses"
    async with websockets.connect(url) as socket:
        await socket.send(json.dumps({"type": "response.create", "model": "m", "input": "long"}))
        while json.loads(await socket.recv())["type"] != "response.output_text.delta":
            pass
        await socket.send(json.dumps({"type": "response.create", "model": "m", "input": "again"}))
        while (event := json.loads(await socket.recv()))["type"] != "error":
            assert event["type"] == "response.output_text.delta"
        assert event["error"]["code"] == "response_already_in_progress"
    stats = stub.wait_for(lambda s: s["ws_open"] == 0 and s["streams_open"] == 0)
    assert stats["streams_disconnected"] == 1


async def test_a_turn_that_breaks_off_is_forgotten(client: AsyncOpenAI, stub: StubServer) -> None:
    async with client.responses.connect() as connection:
        await connection.response.create(model="stub-model", input="one two three", store=False)
        first = (await turn(connection))[-1].response
        stub.configure(fail_midstream=1.0)
        await connection.response.create(
            model="stub-model", previous_response_id=first.id, input="four five six", store=False
        )
        broken = await turn(connection)
        assert broken[-1].type == "response.failed"
        assert any(event.type == "response.output_text.delta" for event in broken)
        stub.configure(fail_midstream=0.0)
        await connection.response.create(
            model="stub-model", previous_response_id=broken[-1].response.id, input="x", store=False
        )
        (error,) = await turn(connection)
    assert error.error.code == "previous_response_not_found"


async def test_key_check_and_connection_time_limit(stub: StubServer) -> None:
    url = stub.base_url.replace("http://", "ws://") + "/responses"
    create = json.dumps({"type": "response.create", "model": "m", "input": "x"})
    stub.configure(api_key="right")
    async with websockets.connect(
        url, additional_headers={"Authorization": "Bearer wrong"}
    ) as socket:
        await socket.send(create)
        refused = json.loads(await socket.recv())
    assert (refused["status"], refused["error"]["code"]) == (401, "invalid_api_key")
    stub.configure(api_key=None, ws_max_connection_s=0.001)
    async with websockets.connect(url) as socket:
        await asyncio.sleep(0.01)
        await socket.send(create)
        expired = json.loads(await socket.recv())
        assert expired["error"]["code"] == "websocket_connection_limit_reached"
        with pytest.raises(websockets.ConnectionClosedOK):
            await socket.recv()
