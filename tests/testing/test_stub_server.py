"""The stub over real HTTP on loopback: wire format checked against the openai SDK's own types."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from mezzo.stub.config import StubConfig
from mezzo.stub.server import StubServer

STREAM_EVENT = TypeAdapter(ResponseStreamEvent)


@pytest.fixture(scope="module")
def server() -> Iterator[StubServer]:
    with StubServer() as stub:
        yield stub


@pytest.fixture
def stub(server: StubServer) -> StubServer:
    server.configure(**StubConfig().model_dump())
    server.reset()
    return server


def http(stub: StubServer) -> httpx.Client:
    return httpx.Client(
        base_url=stub.url, trust_env=False, headers={"authorization": "Bearer key-a"}
    )


def sse(response: httpx.Response) -> list[tuple[str | None, str]]:
    """(event name, data) of every server-sent event."""
    events, name = [], None
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            events.append((name, line.removeprefix("data: ")))
            name = None
    return events


def test_responses_stream_matches_openai_types(stub: StubServer) -> None:
    with (
        http(stub) as client,
        client.stream(
            "POST",
            "/v1/responses",
            json={"model": "stub-model", "input": "hello there", "stream": True},
        ) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse(response)
    parsed = [STREAM_EVENT.validate_python(json.loads(data)) for _, data in events]
    assert [name for name, _ in events] == [event.type for event in parsed]
    assert [event.sequence_number for event in parsed] == list(range(len(parsed)))
    types = [event.type for event in parsed]
    assert types[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert types[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    deltas = [event.delta for event in parsed if event.type == "response.output_text.delta"]
    final = parsed[-1].response
    assert "".join(deltas) == final.output_text == "echo: hello there"
    assert final.usage.output_tokens == len(deltas)
    assert final.usage.total_tokens == final.usage.input_tokens + final.usage.output_tokens


def test_responses_function_call_stream(stub: StubServer) -> None:
    body = {"model": "m", "input": '/call lookup {"table": "users"}', "stream": True}
    with http(stub) as client, client.stream("POST", "/v1/responses", json=body) as response:
        parsed = [STREAM_EVENT.validate_python(json.loads(data)) for _, data in sse(response)]
    arguments = "".join(
        e.delta for e in parsed if e.type == "response.function_call_arguments.delta"
    )
    done = next(e for e in parsed if e.type == "response.function_call_arguments.done")
    assert json.loads(arguments) == json.loads(done.arguments) == {"table": "users"}
    (item,) = parsed[-1].response.output
    assert (item.type, item.name, item.status) == ("function_call", "lookup", "completed")


def test_non_streamed_bodies_match_openai_types(stub: StubServer) -> None:
    with http(stub) as client:
        response = client.post(
            "/v1/responses", json={"model": "m", "input": "hi", "max_output_tokens": 2}
        )
        chat = client.post(
            "/v1/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
        )
    cut = Response.model_validate(response.json())
    assert cut.status == "incomplete" and cut.incomplete_details.reason == "max_output_tokens"
    assert cut.output_text == "echo:" and cut.usage.output_tokens == 2
    completion = ChatCompletion.model_validate(chat.json())
    assert completion.choices[0].message.content == "echo: hi"
    assert completion.choices[0].finish_reason == "stop"


def test_chat_stream_matches_openai_types(stub: StubServer) -> None:
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": '/call add {"a": 1, "b": 2}'}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with http(stub) as client, client.stream("POST", "/v1/chat/completions", json=body) as response:
        events = sse(response)
    assert events[-1] == (None, "[DONE]")
    chunks = [ChatCompletionChunk.model_validate(json.loads(data)) for _, data in events[:-1]]
    calls = [
        call
        for chunk in chunks
        for choice in chunk.choices
        for call in choice.delta.tool_calls or ()
    ]
    assert calls[0].function.name == "add" and calls[0].id
    assert json.loads("".join(call.function.arguments or "" for call in calls)) == {"a": 1, "b": 2}
    assert chunks[-2].choices[0].finish_reason == "tool_calls"
    assert chunks[-1].choices == [] and chunks[-1].usage.prompt_tokens > 0


async def test_official_sdk_round_trip_with_previous_response_id(stub: StubServer) -> None:
    client = AsyncOpenAI(base_url=stub.base_url, api_key="key-a", max_retries=0)
    first = await client.responses.create(model="stub-model", input='/call now {"tz": "UTC"}')
    (call,) = first.output
    assert call.type == "function_call"
    second = await client.responses.create(
        model="stub-model",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "12:00"}],
    )
    assert second.output_text == "echo: 12:00"
    assert second.usage.input_tokens > first.usage.input_tokens
    models = await client.models.list()
    assert [model.id for model in models.data] == ["stub-model"]
    await client.close()


def test_rate_limit_headers_and_429(stub: StubServer) -> None:
    stub.configure(rpm=2, tpm=100_000)
    body = {"model": "m", "input": "hi"}
    with http(stub) as client:
        first = client.post("/v1/responses", json=body)
        second = client.post("/v1/responses", json=body)
        refused = client.post("/v1/responses", json=body)
        other_key = client.post(
            "/v1/responses", json=body, headers={"authorization": "Bearer key-b"}
        )
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    assert first.headers["x-ratelimit-limit-tokens"] == "100000"
    assert int(first.headers["x-ratelimit-remaining-tokens"]) < 100_000
    assert second.headers["x-ratelimit-remaining-requests"] == "0"
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert 0 < int(refused.headers["retry-after-ms"]) <= 30_000
    assert int(refused.headers["retry-after"]) == -(-int(refused.headers["retry-after-ms"]) // 1000)
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert other_key.status_code == 200
    stats = stub.stats()
    assert stats["rate_limited"] == 1 and stats["by_status"] == {"200": 3, "429": 1}
    assert [entry["key"] for entry in stats["log"]] == ["key-a", "key-a", "key-a", "key-b"]


def run_faults(stub: StubServer, count: int) -> list[int]:
    with http(stub) as client:
        return [
            client.post("/v1/responses", json={"model": "m", "input": "x"}).status_code
            for _ in range(count)
        ]


def test_injected_faults_are_seeded(stub: StubServer) -> None:
    stub.configure(fail_429=0.2, fail_500=0.2, fail_503=0.2, seed=7, fault_retry_after_s=2.5)
    first = run_faults(stub, 40)
    stub.configure(seed=7)
    assert run_faults(stub, 40) == first
    assert {200, 429, 500, 503} <= set(first)
    with http(stub) as client:
        stub.configure(fail_429=1.0, fail_500=0.0, fail_503=0.0)
        injected = client.post("/v1/responses", json={"model": "m", "input": "x"})
    assert injected.headers["retry-after-ms"] == "2500" and injected.headers["retry-after"] == "3"
    assert stub.stats()["faults"]["429"] == first.count(429) * 2 + 1


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "x"}, "model"),
        ({"model": "m", "input": 5}, "input"),
        ({"model": "m", "input": [{"type": "function_call", "name": "f"}]}, "input[0].call_id"),
        ({"model": "m", "input": "x", "max_output_tokens": 0}, "max_output_tokens"),
        (
            {"model": "m", "input": "x", "previous_response_id": "resp_missing"},
            "previous_response_id",
        ),
    ],
)
def test_bad_requests_get_400_with_the_param(
    stub: StubServer, body: dict[str, Any], param: str
) -> None:
    with http(stub) as client:
        response = client.post("/v1/responses", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


def test_malformed_json_and_unknown_route(stub: StubServer) -> None:
    with http(stub) as client:
        malformed = client.post("/v1/chat/completions", content=b"{nope")
        unknown = client.get("/v1/nothing")
    assert malformed.status_code == 400 and "JSON" in malformed.json()["error"]["message"]
    assert unknown.status_code == 404 and unknown.json()["error"]["message"]


def test_admin_config_validates_and_changes_nothing_on_error(stub: StubServer) -> None:
    with http(stub) as client:
        bad = client.post("/_stub/config", json={"fail_500": 0.8, "fail_503": 0.5})
        unknown = client.post("/_stub/config", json={"latency": 3})
        good = client.post("/_stub/config", json={"latency_ms": 5, "models": ["a", "b"]})
        models = client.get("/v1/models")
    assert bad.status_code == 422 and "must not exceed 1" in bad.json()["error"]["message"]
    assert unknown.status_code == 422 and "latency" in unknown.json()["error"]["message"]
    assert good.json()["latency_ms"] == 5 and good.json()["fail_500"] == 0.0
    assert [model["id"] for model in models.json()["data"]] == ["a", "b"]


def test_api_key_is_enforced_when_configured(stub: StubServer) -> None:
    stub.configure(api_key="secret")
    with http(stub) as client:
        refused = client.post("/v1/responses", json={"model": "m", "input": "x"})
        allowed = client.post(
            "/v1/responses",
            json={"model": "m", "input": "x"},
            headers={"authorization": "Bearer secret"},
        )
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
    assert allowed.status_code == 200


def test_midstream_failure_breaks_off_both_streams(stub: StubServer) -> None:
    stub.configure(fail_midstream=1.0)
    body = {"model": "m", "input": "one two three four five six", "stream": True}
    with http(stub) as client, client.stream("POST", "/v1/responses", json=body) as response:
        parsed = [STREAM_EVENT.validate_python(json.loads(data)) for _, data in sse(response)]
    deltas = [e.delta for e in parsed if e.type == "response.output_text.delta"]
    assert parsed[-1].type == "response.failed"
    assert parsed[-1].response.error.code == "server_error"
    assert 0 < len(deltas) < 10
    chat_body = {
        "model": "m",
        "messages": [{"role": "user", "content": "one two three"}],
        "stream": True,
    }
    with (
        http(stub) as client,
        client.stream("POST", "/v1/chat/completions", json=chat_body) as response,
    ):
        events = sse(response)
    assert json.loads(events[-1][1])["error"]["code"] == "server_error"
    assert all(data != "[DONE]" for _, data in events)
    with http(stub) as client:
        plain = client.post("/v1/responses", json={"model": "m", "input": "x"})
    assert plain.status_code == 500
    assert stub.stats()["faults"] == {"midstream": 3}


def test_reported_usage_matches_the_governors_count_with_the_stub_tokenizer(
    stub: StubServer,
) -> None:
    from mezzo.governor.tokens import ChatCounter
    from mezzo.stub.tokens import StubTokenizer

    messages = [
        {"role": "system", "content": "You review architectures."},
        {"role": "user", "content": '/call lookup_schema {"table": "users"}'},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "lookup_schema", "arguments": '{"table":"users"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "id int, email text"},
    ]
    with http(stub) as client:
        completion = ChatCompletion.model_validate(
            client.post("/v1/chat/completions", json={"model": "m", "messages": messages}).json()
        )
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == ChatCounter(StubTokenizer()).openai_messages(messages)


async def test_input_token_count_matches_the_usage_of_the_call(stub: StubServer) -> None:
    client = AsyncOpenAI(base_url=stub.base_url, api_key="key-a", max_retries=0)
    tools = [{"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": False}]
    first = await client.responses.create(model="stub-model", input="first turn", tools=tools)
    body = {
        "model": "stub-model",
        "input": "second turn",
        "tools": tools,
        "previous_response_id": first.id,
    }
    counted = await client.responses.input_tokens.count(**body)
    answered = await client.responses.create(**body)
    assert counted.object == "response.input_tokens"
    assert counted.input_tokens == answered.usage.input_tokens
    stub.configure(rpm=1)
    await client.responses.create(model="stub-model", input="uses the only request")
    for _ in range(2):  # counting is not a model call: no limits
        assert (await client.responses.input_tokens.count(input="x")).input_tokens > 0
    await client.close()
