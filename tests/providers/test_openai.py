"""OpenAIProvider against the stub LLM server over real HTTP on loopback, both APIs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing

import pytest

from mezzo.providers.base import (
    Message,
    ModelRequest,
    ModelResponse,
    ProviderError,
    TextDelta,
    ToolSpec,
)
from mezzo.providers.openai import OpenAIProvider, parse_retry_after
from mezzo.stub.config import StubConfig
from mezzo.stub.server import StubServer, bind_loopback

LOOKUP = ToolSpec(
    "lookup_schema",
    "Look up a table's schema.",
    {"type": "object", "properties": {"table": {"type": "string"}}, "required": ["table"]},
)


@pytest.fixture(scope="module")
def server() -> Iterator[StubServer]:
    with StubServer() as stub:
        yield stub


@pytest.fixture
def stub(server: StubServer) -> StubServer:
    server.configure(**StubConfig().model_dump())
    server.reset()
    return server


@pytest.fixture(params=["responses", "chat"])
async def provider(
    request: pytest.FixtureRequest, stub: StubServer
) -> AsyncIterator[OpenAIProvider]:
    provider = OpenAIProvider(request.param, base_url=stub.base_url, api_key="test-key")
    yield provider
    await provider.aclose()


def ask(text: str, *history: Message, **fields: object) -> ModelRequest:
    messages = (Message("system", "You are terse."), *history, Message("user", text))
    return ModelRequest(model="stub-model", messages=messages, tools=(LOOKUP,), **fields)  # type: ignore[arg-type]


async def collect(
    provider: OpenAIProvider, request: ModelRequest
) -> tuple[list[str], ModelResponse]:
    deltas: list[str] = []
    finals: list[ModelResponse] = []
    async with aclosing(provider.stream(request)) as chunks:
        async for chunk in chunks:
            assert not finals, "nothing may follow the ModelResponse"
            if isinstance(chunk, TextDelta):
                deltas.append(chunk.text)
            else:
                finals.append(chunk)
    assert len(finals) == 1
    return deltas, finals[0]


async def test_streams_text_with_usage_that_matches_the_upstream(
    provider: OpenAIProvider, stub: StubServer
) -> None:
    deltas, final = await collect(provider, ask("Review the architecture"))
    assert len(deltas) > 1
    assert "".join(deltas) == final.text == "echo: Review the architecture"
    assert final.tool_calls == () and final.finish_reason == "stop"
    (entry,) = stub.stats()["log"]
    assert final.usage is not None
    assert (final.usage.input_tokens, final.usage.output_tokens) == (
        entry["input_tokens"],
        entry["output_tokens"],
    )
    assert entry["key"] == "test-key" and entry["stream"] is True
    assert entry["outcome"] == "completed"


async def test_tool_loop_over_several_turns(provider: OpenAIProvider, stub: StubServer) -> None:
    prompt = "\n".join(
        [
            "Check both.",
            '/call lookup_schema {"table": "users"}',
            '/call lookup_schema {"table": "orders"}',
        ]
    )
    history: list[Message] = []
    seen_tables = []
    for turn in range(3):
        request = ModelRequest(
            model="stub-model",
            messages=(Message("user", prompt), *history),
            tools=(LOOKUP,),
        )
        deltas, final = await collect(provider, request)
        if turn < 2:
            assert final.finish_reason == "tool_calls" and deltas == []
            (call,) = final.tool_calls
            assert call.name == "lookup_schema"
            seen_tables.append(call.arguments["table"])
            result = f"{call.arguments['table']}: id int"
            history += [
                Message("assistant", tool_calls=(call,)),
                Message("tool", result, call_id=call.call_id),
            ]
        else:
            assert final.tool_calls == ()
            assert final.text == "echo: orders: id int"
    assert seen_tables == ["users", "orders"]
    assert [entry["input_tokens"] for entry in stub.stats()["log"]] == sorted(
        entry["input_tokens"] for entry in stub.stats()["log"]
    )


async def test_max_output_tokens_reports_length(provider: OpenAIProvider) -> None:
    _, final = await collect(provider, ask("one two three four five", max_output_tokens=3))
    assert final.finish_reason == "length"
    assert final.usage is not None and final.usage.output_tokens == 3


async def test_rate_limit_headers_reach_the_response(
    provider: OpenAIProvider, stub: StubServer
) -> None:
    stub.configure(rpm=100, tpm=50_000)
    _, final = await collect(provider, ask("hi"))
    assert final.headers["x-ratelimit-limit-requests"] == "100"
    assert final.headers["x-ratelimit-remaining-requests"] == "99"
    assert int(final.headers["x-ratelimit-remaining-tokens"]) == 50_000 - final.usage.total_tokens  # type: ignore[union-attr]
    assert "x-ratelimit-reset-tokens" in final.headers


async def test_429_from_a_limit_carries_retry_after(
    provider: OpenAIProvider, stub: StubServer
) -> None:
    stub.configure(rpm=1)
    await collect(provider, ask("first"))
    with pytest.raises(ProviderError) as caught:
        await collect(provider, ask("second"))
    error = caught.value
    assert error.status == 429 and error.retryable
    assert error.retry_after is not None and 55 < error.retry_after <= 60
    assert error.headers["x-ratelimit-remaining-requests"] == "0"
    assert stub.stats()["by_status"] == {"200": 1, "429": 1}


async def test_injected_429_retry_after_ms_is_parsed(
    provider: OpenAIProvider, stub: StubServer
) -> None:
    stub.configure(fail_429=1.0, fault_retry_after_s=2.25)
    with pytest.raises(ProviderError) as caught:
        await collect(provider, ask("x"))
    assert caught.value.status == 429 and caught.value.retry_after == 2.25


@pytest.mark.parametrize("status", [500, 503])
async def test_server_errors_are_retryable(
    provider: OpenAIProvider, stub: StubServer, status: int
) -> None:
    stub.configure(**{f"fail_{status}": 1.0})
    with pytest.raises(ProviderError) as caught:
        await collect(provider, ask("x"))
    assert caught.value.status == status and caught.value.retryable
    assert caught.value.retry_after is None
    # max_retries=0: the SDK sent exactly one request; the governor owns retries.
    assert stub.stats()["requests"] == 1


async def test_a_stream_that_breaks_off_is_a_retryable_error(
    provider: OpenAIProvider, stub: StubServer
) -> None:
    stub.configure(fail_midstream=1.0)
    deltas: list[str] = []
    with pytest.raises(ProviderError) as caught:
        async with aclosing(provider.stream(ask("one two three four five six"))) as chunks:
            async for chunk in chunks:
                assert isinstance(chunk, TextDelta), "no ModelResponse after a failure"
                deltas.append(chunk.text)
    assert caught.value.retryable and "server" in str(caught.value)
    assert deltas and "".join(deltas) != "echo: one two three four five six"


async def test_client_errors_are_not_retryable(provider: OpenAIProvider, stub: StubServer) -> None:
    stub.configure(api_key="the-right-key")
    with pytest.raises(ProviderError) as caught:
        await collect(provider, ask("x"))
    assert caught.value.status == 401 and not caught.value.retryable
    stub.configure(api_key=None)
    with pytest.raises(ProviderError) as caught:
        await collect(provider, ask("x", max_output_tokens=0))
    assert caught.value.status == 400 and not caught.value.retryable


async def test_connection_refused_is_retryable_without_status() -> None:
    sock = bind_loopback()
    port = sock.getsockname()[1]
    sock.close()
    provider = OpenAIProvider("chat", base_url=f"http://127.0.0.1:{port}/v1", api_key="k")
    with pytest.raises(ProviderError) as caught:
        await collect(provider, ask("x"))
    assert caught.value.status is None and caught.value.retryable
    await provider.aclose()


async def test_cancelling_the_consumer_closes_the_stream(
    provider: OpenAIProvider, stub: StubServer
) -> None:
    stub.configure(tokens_per_second=20, reply_tokens=400)  # a 20-second answer
    first_delta = asyncio.Event()

    async def consume() -> None:
        async with aclosing(provider.stream(ask("long answer"))) as chunks:
            async for _chunk in chunks:
                first_delta.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first_delta.wait(), 10)
    assert stub.stats()["streams_open"] == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    stats = stub.wait_for(lambda s: s["streams_open"] == 0)
    assert stats["streams_disconnected"] == 1 and stats["streams_completed"] == 0
    assert stats["log"][-1]["outcome"] == "disconnected"


def test_environment_is_honoured(stub: StubServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", stub.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "from-env")

    async def run() -> ModelResponse:
        provider = OpenAIProvider("responses")
        try:
            return (await collect(provider, ask("env")))[1]
        finally:
            await provider.aclose()

    assert asyncio.run(run()).text == "echo: env"
    assert stub.stats()["log"][-1]["key"] == "from-env"


def test_missing_key_for_openai_itself_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        OpenAIProvider("responses")
    with pytest.raises(ValueError, match="api must be"):
        OpenAIProvider("completions", api_key="k")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after-ms": "1500", "retry-after": "2"}, 1.5),
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": "soon"}, None),
        ({"retry-after-ms": "nan", "retry-after": "3"}, 3.0),
        ({"retry-after": "inf"}, None),
        ({}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers) == expected


def test_parse_retry_after_http_date() -> None:
    from email.utils import formatdate

    seconds = parse_retry_after({"retry-after": formatdate(time.time() + 30, usegmt=True)})
    assert seconds is not None and 25 < seconds <= 30


def test_request_mapping_for_both_apis() -> None:
    from mezzo.providers.base import ToolCall
    from mezzo.providers.openai_wire.requests import chat_params, responses_params

    call = ToolCall("call_9", "lookup_schema", {"table": "users"})
    request = ModelRequest(
        model="m",
        messages=(
            Message("user", "go"),
            Message("assistant", "checking", tool_calls=(call,)),
            Message("tool", "id int", call_id="call_9"),
        ),
        tools=(LOOKUP,),
        tool_choice="lookup_schema",
        max_output_tokens=50,
    )
    responses = responses_params(request, store=False)
    assert responses["input"] == [
        {"type": "message", "role": "user", "content": "go"},
        {"type": "message", "role": "assistant", "content": "checking"},
        {
            "type": "function_call",
            "call_id": "call_9",
            "name": "lookup_schema",
            "arguments": '{"table": "users"}',
        },
        {"type": "function_call_output", "call_id": "call_9", "output": "id int"},
    ]
    assert responses["tool_choice"] == {"type": "function", "name": "lookup_schema"}
    assert (responses["max_output_tokens"], responses["store"]) == (50, False)
    chat = chat_params(request)
    assert chat["messages"][1]["content"] == "checking"
    assert chat["messages"][1]["tool_calls"][0]["function"]["name"] == "lookup_schema"
    assert chat["messages"][2] == {"role": "tool", "tool_call_id": "call_9", "content": "id int"}
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "lookup_schema"}}
    assert chat["max_completion_tokens"] == 50
