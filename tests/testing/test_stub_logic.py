"""Pure parts of the stub: tokenizer, transcript parsing, reply rules, limits."""

from __future__ import annotations

import json
import math

import pytest

from mezzo.stub.behaviour import decide, parse_call_lines
from mezzo.stub.limits import RateLimits, format_duration
from mezzo.stub.tokens import count_tokens, split_tokens
from mezzo.stub.transcript import (
    BadRequest,
    Item,
    input_tokens,
    parse_chat_messages,
    parse_responses_input,
)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello",
        "Hello, world!",
        "  leading and trailing  ",
        "naïve café 12345 a_b\n\tx",
        '{"q": [1, 2]}',
    ],
)
def test_tokens_join_back_to_the_text(text: str) -> None:
    assert "".join(split_tokens(text)) == text


def test_token_rules() -> None:
    assert split_tokens("echo: hello world") == ["echo", ":", " hell", "o", " worl", "d"]
    assert split_tokens("1234567") == ["123", "456", "7"]
    assert count_tokens("a_b") == 3
    assert count_tokens("end  ") == 2


def user(text: str) -> Item:
    return Item("message", role="user", text=text)


def output(call_id: str, text: str) -> Item:
    return Item("function_call_output", role="tool", call_id=call_id, text=text)


def test_echoes_the_newest_user_message() -> None:
    reply = decide([user("first"), Item("message", role="assistant", text="x"), user("second")])
    assert reply.call is None
    assert reply.text == "echo: second"
    assert reply.output_tokens == count_tokens("echo: second")


def test_call_lines_drive_a_tool_loop_in_order() -> None:
    message = user('please\n/call search {"q": "cats"}\n/call fetch {"id": 7}')
    first = decide([message])
    assert first.call is not None
    assert (first.call.name, json.loads(first.call.arguments)) == ("search", {"q": "cats"})
    call_item = Item(
        "function_call", call_id=first.call.call_id, name="search", text=first.call.arguments
    )
    second = decide([message, call_item, output(first.call.call_id, "found")])
    assert second.call is not None
    assert (second.call.name, json.loads(second.call.arguments)) == ("fetch", {"id": 7})
    assert second.call.call_id != first.call.call_id
    third = decide([message, call_item, output(first.call.call_id, "found"), output("c2", "page")])
    assert third.call is None
    assert third.text == "echo: page"


def test_calls_are_deterministic() -> None:
    items = [user("/call ping")]
    assert decide(items) == decide(items)
    call = decide(items).call
    assert call is not None and json.loads(call.arguments) == {}


def test_bad_call_arguments_are_answered_with_text() -> None:
    assert parse_call_lines("/call f [1]")[0].error
    reply = decide([user("/call f {not json")])
    assert reply.call is None
    assert reply.text.startswith("echo: invalid JSON arguments for f")


def test_max_output_tokens_truncates_and_reply_tokens_pads() -> None:
    cut = decide([user("one two three four five")], max_output_tokens=3)
    assert cut.truncated and cut.output_tokens == 3 and cut.text == "echo: one"
    padded = decide([user("hi")], reply_tokens=50)
    assert padded.output_tokens == 50 and count_tokens(padded.text) == 50
    assert padded.text.startswith("echo: hi")


def test_parse_responses_input_shapes() -> None:
    items = parse_responses_input(
        [
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "a"},
                    {"type": "input_text", "text": "b"},
                ],
            },
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "42"},
        ],
        instructions="be brief",
    )
    assert [(i.kind, i.role, i.text) for i in items] == [
        ("message", "system", "be brief"),
        ("message", "user", "ab"),
        ("function_call", "assistant", "{}"),
        ("function_call_output", "tool", "42"),
    ]
    assert parse_responses_input("hi") == [user("hi")]
    with pytest.raises(BadRequest) as err:
        parse_responses_input([{"type": "function_call_output", "output": "x"}])
    assert err.value.param == "input[0].call_id"


CHAT = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "hi", "name": "ada"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        ],
    },
    {"role": "tool", "tool_call_id": "c1", "content": "ok"},
]


def test_parse_chat_messages_and_framing() -> None:
    items = parse_chat_messages(CHAT)
    assert [i.kind for i in items] == [
        "message",
        "message",
        "message",
        "function_call",
        "function_call_output",
    ]
    # system 3+2+4, user 3+1+1 + name 1+1, assistant 3+3, call 3+1+2, tool 3+1+1+2, priming 3
    assert input_tokens(items, []) == 9 + 7 + 6 + 6 + 7 + 3
    with pytest.raises(BadRequest):
        parse_chat_messages([])


def test_chat_framing_matches_the_governors_cookbook_count() -> None:
    from mezzo.governor.tokens import ChatCounter
    from mezzo.stub.tokens import StubTokenizer

    assert ChatCounter(StubTokenizer()).openai_messages(CHAT) == input_tokens(
        parse_chat_messages(CHAT), []
    )


def test_duration_format() -> None:
    assert format_duration(0.12) == "120ms"
    assert format_duration(1) == "1s"
    assert format_duration(2.5) == "2.5s"
    assert format_duration(62.5) == "1m2.5s"


def test_request_limit_refuses_then_refills() -> None:
    limits = RateLimits(rpm=2, tpm=None)
    assert limits.acquire("k", 10, now=0.0).allowed
    second = limits.acquire("k", 10, now=0.0)
    assert second.allowed and second.headers["x-ratelimit-remaining-requests"] == "0"
    refused = limits.acquire("k", 10, now=0.0)
    assert not refused.allowed and refused.limit_type == "requests"
    assert refused.retry_after == pytest.approx(30.0)
    assert limits.acquire("other-key", 10, now=0.0).allowed
    assert limits.acquire("k", 10, now=30.0).allowed


def test_token_limit_takes_nothing_when_refused() -> None:
    limits = RateLimits(rpm=None, tpm=600)
    assert limits.acquire("k", 500, now=0.0).allowed
    refused = limits.acquire("k", 200, now=0.0)
    assert not refused.allowed and refused.limit_type == "tokens"
    assert refused.retry_after == pytest.approx(10.0)
    assert refused.headers["x-ratelimit-remaining-tokens"] == "100"
    assert limits.acquire("k", 100, now=0.0).allowed
    never = limits.acquire("k", 601, now=100.0)
    assert not never.allowed and math.isinf(never.retry_after)
