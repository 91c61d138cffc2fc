"""The gateway as a drop-in for OpenAI clients (issue 16): fields it does not interpret pass to
an upstream of the same API and are named where they are dropped; structured output, strict
tools and Chat `n`/`stop`/`seed` are forwarded, enforced, or refused — never lost silently."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest
from gateway_support import TOOLS, ledger, upstream_params
from openai import AsyncOpenAI, OpenAI
from pydantic import BaseModel

from core_support import ServerThread, capture_logs
from mezzo.stub.server import StubServer

FUTURE = {"prompt_cache_options": {"mode": "extended"}, "future_knob": [1, 2]}
STRICT_TOOLS: list[Any] = [
    {
        "type": "function",
        "name": "read",
        "description": "Read a file.",
        "parameters": {
            "type": "object",
            "properties": {"path": {"type": "string"}},
            "required": ["path"],
            "additionalProperties": False,
        },
        "strict": True,
    }
]


class City(BaseModel):
    name: str
    population: int


def test_unknown_responses_fields_reach_a_responses_upstream_at_every_step(
    client: OpenAI, stub: StubServer
) -> None:
    """The issue's case: a client adds a new field from the second request of a tool loop."""
    first = client.responses.create(
        model="stub-model", input='/call read {"path": "a"}', tools=TOOLS
    )
    call = first.output[0]
    assert call.type == "function_call"
    second = client.responses.create(
        model="stub-model",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "A"}],
        tools=TOOLS,
        extra_body=FUTURE,
        top_p=0.5,
    )
    assert second.output_text == "echo: A"
    sent = upstream_params(stub)
    assert "prompt_cache_options" not in sent[0]
    assert sent[1]["prompt_cache_options"] == FUTURE["prompt_cache_options"]
    assert sent[1]["future_knob"] == [1, 2] and sent[1]["top_p"] == 0.5


async def test_unknown_fields_over_the_websocket_reach_the_upstream_socket(
    aclient: AsyncOpenAI, stub: StubServer
) -> None:
    async with aclient.responses.connect() as connection:
        await connection.send(
            {"type": "response.create", "model": "stub-model", "input": "hi", **FUTURE}
        )
        async for event in connection:
            assert event.type != "error", event
            if event.type == "response.completed":
                break
    assert stub.stats()["by_path"] == {"ws:/v1/responses": 1}
    assert upstream_params(stub)[0]["prompt_cache_options"] == {"mode": "extended"}


def test_fields_another_api_cannot_take_are_dropped_by_name(
    client: OpenAI, gw_server: ServerThread, stub: StubServer
) -> None:
    with capture_logs() as logs:
        raw = client.responses.with_raw_response.create(
            model="via-chat",
            input="hi",
            extra_body={**FUTURE, "top_p": 0.25, "reasoning": {"effort": "low"}},
        )
    assert raw.parse().output_text == "echo: hi"
    assert raw.headers["x-mezzo-dropped-params"] == "future_knob,prompt_cache_options"
    (sent,) = upstream_params(stub)
    assert "messages" not in sent and sent["top_p"] == 0.25
    assert sent["reasoning_effort"] == "low"  # the same field under its Chat name
    assert "prompt_cache_options" not in sent and "future_knob" not in sent
    warned = [e for e in logs if e.get("dropped")]
    assert warned and warned[0]["dropped"] == ["future_knob", "prompt_cache_options"]
    # Chat Completions to a Chat upstream: everything passes, nothing is dropped.
    chat = client.chat.completions.with_raw_response.create(
        model="via-chat",
        messages=[{"role": "user", "content": "hi"}],
        logit_bias={"42": 1},
        frequency_penalty=0.5,
    )
    assert "x-mezzo-dropped-params" not in chat.headers
    assert upstream_params(stub)[-1]["logit_bias"] == {"42": 1}
    assert upstream_params(stub)[-1]["frequency_penalty"] == 0.5


@pytest.mark.parametrize("model", ["stub-model", "via-chat"])
def test_responses_parse_gets_the_schema_upstream_and_a_parsed_answer(
    client: OpenAI, stub: StubServer, model: str
) -> None:
    parsed = client.responses.parse(model=model, input="a city", text_format=City)
    assert parsed.output_parsed == City(name="stub", population=0)
    (sent,) = upstream_params(stub)
    if model == "stub-model":  # the Responses upstream gets `text.format` as sent
        fmt = sent["text"]["format"]
    else:  # the Chat upstream gets the same schema as `response_format`
        assert sent["response_format"]["type"] == "json_schema"
        fmt = sent["response_format"]["json_schema"]
    assert fmt["name"] == "City" and fmt["strict"] is True
    assert fmt["schema"]["required"] == ["name", "population"]


@pytest.mark.parametrize("model", ["stub-model", "via-chat"])
def test_chat_parse_and_strict_tools_are_forwarded(
    client: OpenAI, stub: StubServer, model: str
) -> None:
    completion = client.chat.completions.parse(
        model=model, messages=[{"role": "user", "content": "a city"}], response_format=City
    )
    assert completion.choices[0].message.parsed == City(name="stub", population=0)
    tool = openai.pydantic_function_tool(City, name="save_city")
    called = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": '/call save_city {"name": "x", "population": 1}'}],
        tools=[tool],
    )
    (call,) = called.choices[0].message.tool_calls or []
    assert json.loads(call.function.arguments) == {"name": "x", "population": 1}
    sent = upstream_params(stub)
    tools = sent[1]["tools"]
    strict = tools[0]["strict"] if model == "stub-model" else tools[0]["function"]["strict"]
    assert strict is True
    responses = client.responses.create(model=model, input="x", tools=STRICT_TOOLS)
    assert responses.tools[0].strict is True
    last = upstream_params(stub)[-1]["tools"][0]
    assert (last.get("strict") if model == "stub-model" else last["function"]["strict"]) is True


def test_chat_n_stop_seed_on_a_chat_upstream_are_forwarded(
    client: OpenAI, gw_server: ServerThread, workspace: str, stub: StubServer
) -> None:
    messages: list[Any] = [{"role": "user", "content": "hello world and more"}]
    completion = client.chat.completions.create(
        model="via-chat", messages=messages, n=2, stop=["world"], seed=7
    )
    assert [c.message.content for c in completion.choices] == ["echo: hello ", "echo: hello "]
    assert [c.index for c in completion.choices] == [0, 1]
    (sent,) = upstream_params(stub)
    assert (sent["n"], sent["stop"], sent["seed"]) == (2, ["world"], 7)
    streamed = list(
        client.chat.completions.create(
            model="via-chat",
            messages=messages,
            n=2,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    texts = ["", ""]
    for chunk in streamed:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
    assert texts == ["echo: hello world and more"] * 2
    assert ledger(gw_server, workspace)["committed"] == (
        completion.usage.total_tokens + streamed[-1].usage.total_tokens  # type: ignore[union-attr]
    )


def test_chat_stop_is_enforced_n_refused_and_seed_named_on_a_responses_upstream(
    client: OpenAI, gw_server: ServerThread, workspace: str, stub: StubServer
) -> None:
    messages: list[Any] = [{"role": "user", "content": "alpha beta gamma delta"}]
    cut = client.chat.completions.with_raw_response.create(
        model="stub-model", messages=messages, stop=["gamma", "zzz"], seed=3
    )
    completion = cut.parse()
    assert completion.choices[0].message.content == "echo: alpha beta "
    assert completion.choices[0].finish_reason == "stop"
    assert cut.headers["x-mezzo-dropped-params"] == "seed"
    text = "".join(
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(
            model="stub-model", messages=messages, stop="ta g", stream=True
        )
        if c.choices
    )
    assert text == "echo: alpha be"
    assert all("stop" not in sent and "seed" not in sent for sent in upstream_params(stub))
    before = ledger(gw_server, workspace)
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="stub-model", messages=messages, n=2)
    assert refused.value.code == "unsupported_value" and refused.value.param == "n"
    assert len(upstream_params(stub)) == 2
    assert ledger(gw_server, workspace) == before


def test_chat_max_tokens_below_16_is_taken(client: OpenAI) -> None:
    one = client.chat.completions.create(
        model="stub-model", messages=[{"role": "user", "content": "ping pong"}], max_tokens=1
    )
    assert one.usage is not None and one.usage.completion_tokens == 1
    assert one.choices[0].finish_reason == "length"
    with pytest.raises(openai.BadRequestError) as responses_minimum:
        client.responses.create(model="stub-model", input="x", max_output_tokens=8)
    assert responses_minimum.value.param == "max_output_tokens"
    with pytest.raises(openai.BadRequestError) as zero:
        client.chat.completions.create(
            model="stub-model", messages=[{"role": "user", "content": "x"}], max_tokens=0
        )
    assert zero.value.param == "max_tokens"


def test_bad_field_types_are_named(gw_server: ServerThread, workspace: str) -> None:
    url = f"{gw_server.url}/v1/responses"
    headers = {"X-Mezzo-Workspace": workspace}
    cases: list[tuple[Any, str | None, str]] = [
        ({"model": "stub-model", "input": "x", "store": "yes"}, "store", "invalid_type"),
        ({"model": "stub-model", "input": 5}, "input", "invalid_value"),
        (
            {"model": "stub-model", "input": "x", "tools": [{"type": "web_search"}]},
            "tools[0].type",
            "unsupported_value",
        ),
        (
            {"model": "stub-model", "input": "x", "text": {"format": {"type": "json_schema"}}},
            "text.format",
            "invalid_value",
        ),
        (
            {"model": "stub-model", "input": "x", "conversation": "conv_1"},
            "conversation",
            "unsupported_value",
        ),
        (
            {"model": "stub-model", "input": "x", "background": True},
            "background",
            "unsupported_value",
        ),
        (
            {"model": "stub-model", "input": [{"type": "item_reference", "id": "msg_1"}]},
            "input[0].type",
            "unsupported_value",
        ),
        ([1, 2], None, "invalid_json"),
        ({"model": "stub-model", "input": "[" * 5000 + "]" * 5000}, None, "ok"),
    ]
    for body, param, code in cases:
        answer = httpx.post(url, json=body, headers=headers, trust_env=False)
        if code == "ok":
            assert answer.status_code == 200
            continue
        assert answer.status_code == 400, body
        error = answer.json()["error"]
        assert (error["param"], error["code"]) == (param, code), error
    deep = b'{"model": "stub-model", "input": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    nested = httpx.post(url, content=deep, headers=headers, trust_env=False)
    assert nested.status_code == 400 and nested.json()["error"]["code"] == "invalid_json"
