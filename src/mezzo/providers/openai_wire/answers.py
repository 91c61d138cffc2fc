"""Answers in both OpenAI wire formats.

In: an upstream's Responses object, or its Chat Completions (a whole completion or the chunks
of a stream), as a `ModelResponse`. Out: a `ModelResponse` as a Chat Completions object or its
chunks, and the pieces of a Responses object (output items, usage) the gateway's writer uses.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from mezzo.providers.base import (
    Choice,
    Message,
    ModelResponse,
    ProviderError,
    TextDelta,
    ToolCall,
    Usage,
)
from mezzo.providers.openai_wire.items import chat_tool_calls


def parse_arguments(raw: str, name: str) -> dict[str, Any]:
    """A model's tool-call arguments; a ProviderError when they are not a JSON object."""
    try:
        arguments = json.loads(raw or "{}")
    except json.JSONDecodeError as err:
        raise ProviderError(
            f"the model sent invalid JSON arguments for {name}: {err.msg}"
        ) from None
    if not isinstance(arguments, dict):
        raise ProviderError(f"the model sent arguments for {name} that are not a JSON object")
    return arguments


def usage_from(raw: Any, input_key: str, output_key: str) -> Usage | None:
    try:
        return Usage(int(raw[input_key]), int(raw[output_key]))
    except (KeyError, TypeError, ValueError):
        return None


def output_message(response: ModelResponse) -> Message | None:
    """The answer as the transcript's next message (None when it said nothing)."""
    if not response.text and not response.tool_calls:
        return None
    return Message("assistant", response.text, response.tool_calls)


# ---- in: Responses -------------------------------------------------------------------------


def response_from_json(
    response: dict[str, Any], model: str, headers: dict[str, str]
) -> ModelResponse:
    """A final Responses object (as JSON) as a ModelResponse."""
    texts: list[str] = []
    tool_calls: list[ToolCall] = []
    for item in response.get("output") or ():
        if item.get("type") == "function_call":
            name = item.get("name", "")
            arguments = parse_arguments(item.get("arguments", ""), name)
            tool_calls.append(ToolCall(item.get("call_id", ""), name, arguments))
        elif item.get("type") == "message":
            texts += [
                part.get("text", "")
                for part in item.get("content") or ()
                if part.get("type") == "output_text"
            ]
    usage = (
        usage_from(response["usage"], "input_tokens", "output_tokens")
        if response.get("usage")
        else None
    )
    if response.get("status") == "incomplete":
        reason = (response.get("incomplete_details") or {}).get("reason") or "incomplete"
        finish_reason = "length" if reason == "max_output_tokens" else reason
    else:
        finish_reason = "tool_calls" if tool_calls else "stop"
    return ModelResponse(
        model=response.get("model") or model,
        text="".join(texts),
        tool_calls=tuple(tool_calls),
        usage=usage,
        finish_reason=finish_reason,
        headers=headers,
    )


# ---- in: Chat Completions ------------------------------------------------------------------


@dataclass(slots=True)
class _Slot:
    texts: list[str] = field(default_factory=list)
    calls: dict[int, dict[str, str]] = field(default_factory=dict)
    finish_reason: str | None = None

    def tool_calls(self) -> tuple[ToolCall, ...]:
        return tuple(
            ToolCall(slot["id"], slot["name"], parse_arguments(slot["arguments"], slot["name"]))
            for _, slot in sorted(self.calls.items())
        )


class ChatAnswer:
    """A Chat Completions answer put together from its stream's chunks (or a whole
    completion), one slot per choice index."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.usage: Usage | None = None
        self._slots: dict[int, _Slot] = {}

    def feed(self, chunk: dict[str, Any]) -> Iterator[TextDelta]:
        """Take one streamed chunk; yields its text deltas."""
        self.model = chunk.get("model") or self.model
        if chunk.get("usage"):
            self.usage = usage_from(chunk["usage"], "prompt_tokens", "completion_tokens")
        for choice in chunk.get("choices") or ():
            index = choice.get("index", 0)
            slot = self._slots.setdefault(index, _Slot())
            delta = choice.get("delta") or {}
            if content := delta.get("content"):
                slot.texts.append(content)
                yield TextDelta(content, index)
            for call in delta.get("tool_calls") or ():
                entry = slot.calls.setdefault(
                    call.get("index", 0), {"id": "", "name": "", "arguments": ""}
                )
                entry["id"] = call.get("id") or entry["id"]
                function = call.get("function") or {}
                entry["name"] += function.get("name") or ""
                entry["arguments"] += function.get("arguments") or ""
            if choice.get("finish_reason") is not None:
                slot.finish_reason = choice["finish_reason"]

    def take(self, completion: dict[str, Any]) -> None:
        """Take a whole (non-streamed) completion."""
        self.model = completion.get("model") or self.model
        if completion.get("usage"):
            self.usage = usage_from(completion["usage"], "prompt_tokens", "completion_tokens")
        for choice in completion.get("choices") or ():
            slot = self._slots.setdefault(choice.get("index", 0), _Slot())
            message = choice.get("message") or {}
            slot.texts.append(message.get("content") or "")
            for index, call in enumerate(message.get("tool_calls") or ()):
                function = call.get("function") or {}
                slot.calls[index] = {
                    "id": call.get("id") or "",
                    "name": function.get("name") or "",
                    "arguments": function.get("arguments") or "",
                }
            slot.finish_reason = choice.get("finish_reason") or "stop"

    @property
    def finished(self) -> bool:
        return bool(self._slots) and all(s.finish_reason is not None for s in self._slots.values())

    def response(self, headers: dict[str, str]) -> ModelResponse:
        first = self._slots.get(0, _Slot(finish_reason="stop"))
        more = tuple(
            Choice(index, "".join(slot.texts), slot.tool_calls(), slot.finish_reason or "stop")
            for index, slot in sorted(self._slots.items())
            if index > 0
        )
        return ModelResponse(
            model=self.model,
            text="".join(first.texts),
            tool_calls=first.tool_calls(),
            usage=self.usage,
            finish_reason=first.finish_reason or "stop",
            headers=headers,
            choices=more,
        )


# ---- out: Chat Completions -----------------------------------------------------------------


def chat_usage(usage: Usage | None) -> dict[str, int] | None:
    if usage is None:
        return None
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
    }


def chat_finish_reason(tool_calls: Sequence[ToolCall], finish_reason: str) -> str:
    if tool_calls:
        return "tool_calls"
    return "length" if finish_reason == "length" else "stop"


def all_choices(result: ModelResponse) -> list[Choice]:
    """The first answer and the others (`n` > 1) alike."""
    return [Choice(0, result.text, result.tool_calls, result.finish_reason), *result.choices]


def chat_completion(completion_id: str, model: str, result: ModelResponse) -> dict[str, Any]:
    choices = []
    for choice in all_choices(result):
        message: dict[str, Any] = {
            "role": "assistant",
            "content": choice.text or None,
            "refusal": None,
        }
        if choice.tool_calls:
            message["tool_calls"] = chat_tool_calls(choice.tool_calls, indexed=False)
        choices.append(
            {
                "index": choice.index,
                "message": message,
                "finish_reason": chat_finish_reason(choice.tool_calls, choice.finish_reason),
                "logprobs": None,
            }
        )
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": chat_usage(result.usage),
    }


def chat_chunk(
    completion_id: str,
    model: str,
    delta: dict[str, Any] | None,
    finish_reason: str | None = None,
    usage: dict[str, int] | None = None,
    index: int = 0,
) -> dict[str, Any]:
    choices = (
        []
        if delta is None
        else [{"index": index, "delta": delta, "finish_reason": finish_reason, "logprobs": None}]
    )
    chunk: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
    }
    if usage is not None:
        chunk["usage"] = usage
    return chunk


# ---- out: pieces of a Responses object -----------------------------------------------------


def usage_object(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.total_tokens,
    }


def text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(item_id: str, text: str, status: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": [text_part(text)] if status != "in_progress" else [],
    }


def call_item(item_id: str, call: ToolCall, *, done: bool) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "function_call",
        "status": "completed" if done else "in_progress",
        "call_id": call.call_id,
        "name": call.name,
        "arguments": json.dumps(call.arguments) if done else "",
    }
