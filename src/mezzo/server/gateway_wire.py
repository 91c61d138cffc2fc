"""The OpenAI wire shapes the gateway speaks, as pure functions: no I/O, no governor.

Responses API request bodies are validated into a `ResponsesBody` whose `input` is the
provider-neutral transcript (`Message`s); results come back as the Responses object, its
stream events (with `sequence_number`), or a Chat Completions object and its chunks.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mezzo.providers.base import Message, ModelResponse, ToolCall, ToolSpec, Usage

# Fields of a Responses body the gateway accepts and ignores (they change nothing it does).
IGNORED_FIELDS = frozenset(
    {
        "user",
        "top_p",
        "truncation",
        "reasoning",
        "include",
        "service_tier",
        "prompt_cache_key",
        "prompt_cache_retention",
        "safety_identifier",
        "stream_options",
        "top_logprobs",
        "parallel_tool_calls",
        "text",
        "max_tool_calls",
        "conversation",
    }
)
USED_FIELDS = frozenset(
    {
        "model",
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "previous_response_id",
        "store",
        "stream",
        "max_output_tokens",
        "temperature",
        "metadata",
        "generate",
        "background",
    }
)


class WireError(Exception):
    """A request the OpenAI API would refuse: status, message, code, the offending param."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str,
        param: str | None = None,
        kind: str = "invalid_request_error",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.kind = kind
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        }

    def event(self, sequence_number: int = 0) -> dict[str, Any]:
        """The WebSocket `error` event."""
        return {
            "type": "error",
            "status": self.status,
            "error": {**self.body()["error"], "headers": self.headers},
            "sequence_number": sequence_number,
        }


def bad(message: str, param: str | None = None, code: str = "invalid_value") -> WireError:
    return WireError(400, message, code, param)


def new_response_id() -> str:
    return f"resp_{uuid.uuid4().hex}"


# ---- requests -------------------------------------------------------------------------------


@dataclass(slots=True)
class ResponsesBody:
    model: str
    input: list[Message]
    raw: dict[str, Any]
    instructions: str | None = None
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: str = "auto"
    previous_response_id: str | None = None
    store: bool = True
    stream: bool = False
    max_output_tokens: int | None = None
    temperature: float | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    generate: bool = True


def _str(value: Any, param: str, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise bad(f"Invalid type for '{param}': expected a string.", param, "invalid_type")
    return value


def _bool(value: Any, param: str, default: bool) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise bad(f"Invalid type for '{param}': expected a boolean.", param, "invalid_type")
    return value


def _content_text(content: Any, param: str) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise bad(f"Invalid type for '{param}': expected a string or an array.", param)
    texts = []
    for index, part in enumerate(content):
        where = f"{param}[{index}]"
        if not isinstance(part, dict):
            raise bad(f"Invalid content part at '{where}': expected an object.", where)
        kind = part.get("type")
        if kind not in ("input_text", "output_text", "text"):
            raise bad(
                f"Unsupported content part type {kind!r} at '{where}'; the gateway takes text.",
                f"{where}.type",
                "unsupported_value",
            )
        texts.append(_str(part.get("text"), f"{where}.text") or "")
    return "".join(texts)


def _arguments(raw: Any, param: str) -> dict[str, Any]:
    text = _str(raw, param) or "{}"
    try:
        arguments = json.loads(text or "{}")
    except json.JSONDecodeError:
        raise bad(f"'{param}' is not valid JSON.", param) from None
    if not isinstance(arguments, dict):
        raise bad(f"'{param}' must encode a JSON object.", param)
    return arguments


def _append_call(messages: list[Message], call: ToolCall) -> None:
    """Calls of one assistant turn share one message (Chat Completions needs them together)."""
    last = messages[-1] if messages else None
    if last is not None and last.role == "assistant" and (last.tool_calls or last.content):
        messages[-1] = Message("assistant", last.content, (*last.tool_calls, call))
    else:
        messages.append(Message("assistant", "", (call,)))


def parse_items(value: Any, param: str = "input") -> list[Message]:
    """Responses `input` (a string or a list of items) as a neutral transcript."""
    if isinstance(value, str):
        return [Message("user", value)]
    if not isinstance(value, list):
        raise bad(f"Invalid type for '{param}': expected a string or an array.", param)
    messages: list[Message] = []
    for index, item in enumerate(value):
        where = f"{param}[{index}]"
        if not isinstance(item, dict):
            raise bad(f"Invalid item at '{where}': expected an object.", where)
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "assistant", "system", "developer"):
                raise bad(f"Invalid role {role!r} at '{where}.role'.", f"{where}.role")
            text = _content_text(item.get("content"), f"{where}.content")
            messages.append(Message("system" if role == "developer" else role, text))
        elif kind == "function_call":
            call_id = _str(item.get("call_id"), f"{where}.call_id") or ""
            name = _str(item.get("name"), f"{where}.name") or ""
            arguments = _arguments(item.get("arguments", "{}"), f"{where}.arguments")
            _append_call(messages, ToolCall(call_id, name, arguments))
        elif kind == "function_call_output":
            call_id = _str(item.get("call_id"), f"{where}.call_id") or ""
            output = item.get("output")
            text = output if isinstance(output, str) else _content_text(output, f"{where}.output")
            messages.append(Message("tool", text, call_id=call_id))
        elif kind == "reasoning":
            continue
        else:
            raise bad(
                f"Unsupported item type {kind!r} at '{where}.type'.",
                f"{where}.type",
                "unsupported_value",
            )
    return messages


def parse_tools(value: Any) -> tuple[ToolSpec, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise bad("Invalid type for 'tools': expected an array.", "tools", "invalid_type")
    specs = []
    for index, tool in enumerate(value):
        where = f"tools[{index}]"
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise bad(
                f"Unsupported tool at '{where}': the gateway takes function tools.",
                f"{where}.type",
                "unsupported_value",
            )
        spec = tool.get("function", tool)  # Chat Completions nests it
        name = _str(spec.get("name"), f"{where}.name") or ""
        if not name:
            raise bad(f"Missing tool name at '{where}.name'.", f"{where}.name")
        parameters = spec.get("parameters") or {"type": "object", "properties": {}}
        if not isinstance(parameters, dict):
            raise bad(f"'{where}.parameters' must be an object.", f"{where}.parameters")
        specs.append(ToolSpec(name, str(spec.get("description") or ""), parameters))
    return tuple(specs)


def parse_tool_choice(value: Any) -> str:
    if value is None:
        return "auto"
    if value in ("auto", "required", "none"):
        return str(value)
    if isinstance(value, dict) and value.get("type") == "function":
        name = value.get("name") or (value.get("function") or {}).get("name")
        if isinstance(name, str) and name:
            return name
    raise bad("Invalid 'tool_choice'.", "tool_choice")


def _positive_int(value: Any, param: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 16:
        raise bad(f"'{param}' must be an integer of at least 16.", param)
    return value


def _temperature(value: Any) -> float | None:
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 2:
        raise bad("'temperature' must be a number from 0 to 2.", "temperature")
    return float(value)


def parse_responses_body(raw: Any) -> ResponsesBody:
    if not isinstance(raw, dict):
        raise bad("The body must be a JSON object.", None, "invalid_json")
    unknown = sorted(set(raw) - USED_FIELDS - IGNORED_FIELDS)
    if unknown:
        raise bad(f"Unknown parameter: '{unknown[0]}'.", unknown[0], "unknown_parameter")
    if raw.get("background"):
        raise bad(
            "Background mode is not supported by mezzo's gateway.",
            "background",
            "unsupported_value",
        )
    model = _str(raw.get("model") or "", "model")
    if not model:
        raise WireError(
            400, "Missing required parameter: 'model'.", "missing_required_parameter", "model"
        )
    metadata = raw.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise bad("'metadata' must be an object.", "metadata")
    return ResponsesBody(
        model=model,
        input=parse_items(raw.get("input", [])),
        raw=raw,
        instructions=_str(raw.get("instructions"), "instructions", optional=True),
        tools=parse_tools(raw.get("tools")),
        tool_choice=parse_tool_choice(raw.get("tool_choice")),
        previous_response_id=_str(
            raw.get("previous_response_id"), "previous_response_id", optional=True
        ),
        store=_bool(raw.get("store"), "store", True),
        stream=_bool(raw.get("stream"), "stream", False),
        max_output_tokens=_positive_int(raw.get("max_output_tokens"), "max_output_tokens"),
        temperature=_temperature(raw.get("temperature")),
        metadata={str(k): str(v) for k, v in metadata.items()},
        generate=_bool(raw.get("generate"), "generate", True),
    )


def transcript_items(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """A transcript as Responses input items (how it is stored)."""
    items: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "tool":
            items.append(
                {
                    "type": "function_call_output",
                    "call_id": message.call_id,
                    "output": message.content,
                }
            )
            continue
        if message.content or not message.tool_calls:
            items.append({"type": "message", "role": message.role, "content": message.content})
        items.extend(
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": json.dumps(call.arguments),
            }
            for call in message.tool_calls
        )
    return items


def output_message(response: ModelResponse) -> Message | None:
    if not response.text and not response.tool_calls:
        return None
    return Message("assistant", response.text, response.tool_calls)


# ---- responses ------------------------------------------------------------------------------


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


def tool_object(spec: ToolSpec) -> dict[str, Any]:
    return {
        "type": "function",
        "name": spec.name,
        "description": spec.description,
        "parameters": spec.parameters,
        "strict": False,
    }


class ResponseWriter:
    """One response's object and its stream events, numbered from 0.

    `model` is the model that answers (the fallback's when the router moved the call).
    """

    def __init__(self, response_id: str, body: ResponsesBody, model: str) -> None:
        self.id = response_id
        self.body = body
        self.model = model
        self.created_at = int(time.time())
        self.sequence = 0
        self.output: list[dict[str, Any]] = []
        self.text: list[str] = []
        self.message_open = False
        self.status = "in_progress"
        self.usage: Usage | None = None
        self.error: dict[str, str] | None = None
        self.incomplete: str | None = None

    def _event(self, kind: str, **data: Any) -> dict[str, Any]:
        event = {"type": kind, **data, "sequence_number": self.sequence}
        self.sequence += 1
        return event

    def response(self) -> dict[str, Any]:
        body = self.body
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": self.status,
            "completed_at": int(time.time()) if self.status == "completed" else None,
            "error": self.error,
            "incomplete_details": {"reason": self.incomplete} if self.incomplete else None,
            "instructions": body.instructions,
            "max_output_tokens": body.max_output_tokens,
            "metadata": body.metadata,
            "model": self.model,
            "output": list(self.output),
            "parallel_tool_calls": bool(body.raw.get("parallel_tool_calls", True)),
            "previous_response_id": body.previous_response_id,
            "store": body.store,
            "temperature": body.temperature if body.temperature is not None else 1.0,
            "tool_choice": body.raw.get("tool_choice", "auto"),
            "tools": [tool_object(t) for t in body.tools],
            "top_p": 1.0,
            "truncation": "disabled",
            "usage": usage_object(self.usage) if self.usage is not None else None,
        }

    def start(self) -> list[dict[str, Any]]:
        return [
            self._event("response.created", response=self.response()),
            self._event("response.in_progress", response=self.response()),
        ]

    @property
    def _message_id(self) -> str:
        return f"msg_{self.id.removeprefix('resp_')}"

    def delta(self, text: str) -> list[dict[str, Any]]:
        events = []
        position = {"item_id": self._message_id, "output_index": 0}
        if not self.message_open:
            self.message_open = True
            item = message_item(self._message_id, "", "in_progress")
            events.append(self._event("response.output_item.added", output_index=0, item=item))
            events.append(
                self._event(
                    "response.content_part.added", **position, content_index=0, part=text_part("")
                )
            )
        self.text.append(text)
        events.append(
            self._event(
                "response.output_text.delta", **position, content_index=0, delta=text, logprobs=[]
            )
        )
        return events

    def finish(self, result: ModelResponse) -> list[dict[str, Any]]:
        """The closing events: the text item, each function call item, then the response."""
        events = []
        text = "".join(self.text) or result.text
        if text and not self.message_open:
            events += self.delta(text)
        incomplete = result.finish_reason == "length"
        if self.message_open:
            position = {"item_id": self._message_id, "output_index": 0, "content_index": 0}
            events.append(
                self._event("response.output_text.done", **position, text=text, logprobs=[])
            )
            events.append(
                self._event("response.content_part.done", **position, part=text_part(text))
            )
            item = message_item(self._message_id, text, "incomplete" if incomplete else "completed")
            self.output.append(item)
            events.append(self._event("response.output_item.done", output_index=0, item=item))
        for index, call in enumerate(result.tool_calls):
            output_index = len(self.output)
            item_id = f"fc_{self.id.removeprefix('resp_')}_{index}"
            events.append(
                self._event(
                    "response.output_item.added",
                    output_index=output_index,
                    item=call_item(item_id, call, done=False),
                )
            )
            arguments = json.dumps(call.arguments)
            position = {"item_id": item_id, "output_index": output_index}
            events.append(
                self._event("response.function_call_arguments.delta", **position, delta=arguments)
            )
            events.append(
                self._event(
                    "response.function_call_arguments.done",
                    **position,
                    name=call.name,
                    arguments=arguments,
                )
            )
            done = call_item(item_id, call, done=True)
            self.output.append(done)
            events.append(
                self._event("response.output_item.done", output_index=output_index, item=done)
            )
        self.usage = result.usage
        if incomplete:
            self.status, self.incomplete = "incomplete", "max_output_tokens"
        else:
            self.status = "completed"
        events.append(self._event(f"response.{self.status}", response=self.response()))
        return events

    def warm(self, usage: Usage) -> list[dict[str, Any]]:
        """`generate: false`: the conversation is held, nothing generated."""
        self.usage = usage
        self.status = "completed"
        return [self._event("response.completed", response=self.response())]

    def fail(self, code: str, message: str) -> list[dict[str, Any]]:
        self.status = "failed"
        self.error = {"code": code, "message": message}
        return [self._event("response.failed", response=self.response())]

    def cancel(self) -> list[dict[str, Any]]:
        self.status = "cancelled"
        return []


# ---- chat completions -----------------------------------------------------------------------


@dataclass(slots=True)
class ChatBody:
    model: str
    messages: list[Message]
    tools: tuple[ToolSpec, ...]
    tool_choice: str
    stream: bool
    include_usage: bool
    max_output_tokens: int | None
    temperature: float | None


def parse_chat_body(raw: Any) -> ChatBody:
    if not isinstance(raw, dict):
        raise bad("The body must be a JSON object.", None, "invalid_json")
    model = _str(raw.get("model") or "", "model")
    if not model:
        raise WireError(
            400, "Missing required parameter: 'model'.", "missing_required_parameter", "model"
        )
    value = raw.get("messages")
    if not isinstance(value, list) or not value:
        raise bad("'messages' must be a non-empty array.", "messages")
    messages: list[Message] = []
    for index, entry in enumerate(value):
        where = f"messages[{index}]"
        if not isinstance(entry, dict):
            raise bad(f"Invalid message at '{where}'.", where)
        role = entry.get("role")
        content = entry.get("content")
        text = "" if content is None else _content_text(content, f"{where}.content")
        if role in ("system", "developer", "user"):
            messages.append(Message("system" if role == "developer" else role, text))
        elif role == "assistant":
            calls = []
            for n, call in enumerate(entry.get("tool_calls") or []):
                function = call.get("function") if isinstance(call, dict) else None
                if not isinstance(function, dict):
                    raise bad(
                        f"Invalid tool call at '{where}.tool_calls[{n}]'.",
                        f"{where}.tool_calls[{n}]",
                    )
                arguments = _arguments(
                    function.get("arguments", "{}"), f"{where}.tool_calls[{n}].function.arguments"
                )
                calls.append(
                    ToolCall(str(call.get("id", "")), str(function.get("name", "")), arguments)
                )
            messages.append(Message("assistant", text, tuple(calls)))
        elif role == "tool":
            call_id = _str(entry.get("tool_call_id"), f"{where}.tool_call_id")
            messages.append(Message("tool", text, call_id=call_id))
        else:
            raise bad(f"Invalid role {role!r} at '{where}.role'.", f"{where}.role")
    options = raw.get("stream_options") or {}
    return ChatBody(
        model=model,
        messages=messages,
        tools=parse_tools(raw.get("tools")),
        tool_choice=parse_tool_choice(raw.get("tool_choice")),
        stream=_bool(raw.get("stream"), "stream", False),
        include_usage=bool(isinstance(options, dict) and options.get("include_usage")),
        max_output_tokens=_positive_int(
            raw.get("max_completion_tokens", raw.get("max_tokens")), "max_completion_tokens"
        ),
        temperature=_temperature(raw.get("temperature")),
    )


def chat_usage(usage: Usage | None) -> dict[str, int] | None:
    if usage is None:
        return None
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
    }


def chat_tool_calls(calls: Sequence[ToolCall]) -> list[dict[str, Any]]:
    return [
        {
            "index": index,
            "id": call.call_id,
            "type": "function",
            "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
        }
        for index, call in enumerate(calls)
    ]


def chat_finish_reason(result: ModelResponse) -> str:
    if result.tool_calls:
        return "tool_calls"
    return "length" if result.finish_reason == "length" else "stop"


def chat_completion(completion_id: str, model: str, result: ModelResponse) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": result.text or None}
    if result.tool_calls:
        message["tool_calls"] = [
            {k: v for k, v in call.items() if k != "index"}
            for call in chat_tool_calls(result.tool_calls)
        ]
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": chat_finish_reason(result),
                "logprobs": None,
            }
        ],
        "usage": chat_usage(result.usage),
    }


def chat_chunk(
    completion_id: str,
    model: str,
    delta: dict[str, Any] | None,
    finish_reason: str | None = None,
    usage: dict[str, int] | None = None,
) -> dict[str, Any]:
    choices = (
        []
        if delta is None
        else [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}]
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
