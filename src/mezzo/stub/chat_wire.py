"""The Chat Completions wire format: the completion object and its stream of chunks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from mezzo.stub.answer import Answer, Frame
from mezzo.stub.responses_wire import MIDWAY_FAILURE
from mezzo.stub.structured import choices


def chat_id(answer: Answer) -> str:
    return "chatcmpl-" + answer.id.removeprefix("resp_")


def finish_reason(answer: Answer) -> str:
    if answer.reply.call is not None:
        return "tool_calls"
    return "length" if answer.reply.truncated else "stop"


def _usage(answer: Answer) -> dict[str, Any]:
    output = answer.reply.output_tokens * choices(answer.body)
    return {
        "prompt_tokens": answer.input_tokens,
        "completion_tokens": output,
        "total_tokens": answer.input_tokens + output,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    }


def _envelope(answer: Answer, kind: str) -> dict[str, Any]:
    return {
        "id": chat_id(answer),
        "object": kind,
        "created": answer.created,
        "model": answer.model,
        "system_fingerprint": "fp_mezzo_stub",
    }


def completion(answer: Answer) -> dict[str, Any]:
    reply = answer.reply
    message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
    if reply.call is not None:
        message["tool_calls"] = [
            {
                "id": reply.call.call_id,
                "type": "function",
                "function": {"name": reply.call.name, "arguments": reply.call.arguments},
            }
        ]
    else:
        message["content"] = reply.text
    choice = {
        "index": 0,
        "message": message,
        "logprobs": None,
        "finish_reason": finish_reason(answer),
    }
    every = [{**choice, "index": index} for index in range(choices(answer.body))]
    return {**_envelope(answer, "chat.completion"), "choices": every, "usage": _usage(answer)}


def stream(answer: Answer, *, include_usage: bool) -> Iterator[Frame]:
    reply = answer.reply

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        every = [
            {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
            for index in range(choices(answer.body))
        ]
        body = {**_envelope(answer, "chat.completion.chunk"), "choices": every}
        if include_usage:
            body["usage"] = None
        return body

    if reply.call is not None:
        opening = {
            "index": 0,
            "id": reply.call.call_id,
            "type": "function",
            "function": {"name": reply.call.name, "arguments": ""},
        }
        yield Frame(chunk({"role": "assistant", "content": None, "tool_calls": [opening]}))
        for index, piece in enumerate(reply.pieces):
            if answer.fails_midway and index == answer.tokens_before_failure:
                break
            yield Frame(
                chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}), token=True
            )
    else:
        yield Frame(chunk({"role": "assistant", "content": "", "refusal": None}))
        for index, piece in enumerate(reply.pieces):
            if answer.fails_midway and index == answer.tokens_before_failure:
                break
            yield Frame(chunk({"content": piece}), token=True)
    if answer.fails_midway:
        # How OpenAI reports an error inside a Chat Completions stream; no [DONE] follows.
        error = {"message": MIDWAY_FAILURE, "type": "server_error", "code": "server_error"}
        yield Frame({"error": error})
        return
    yield Frame(chunk({}, finish_reason(answer)))
    if include_usage:
        yield Frame(
            {**_envelope(answer, "chat.completion.chunk"), "choices": [], "usage": _usage(answer)}
        )
