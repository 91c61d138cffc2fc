"""One Responses object and its stream events, numbered from 0, as OpenAI writes them."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from mezzo.providers.base import ModelResponse, ToolCall, Usage
from mezzo.providers.openai_wire.answers import (
    call_item,
    message_item,
    text_part,
    usage_object,
)
from mezzo.providers.openai_wire.items import tool_object
from mezzo.providers.openai_wire.requests import ResponsesRequest


def new_response_id() -> str:
    return f"resp_{uuid.uuid4().hex}"


def _echo(value: Any) -> Any:
    """A request field as the response object repeats it."""
    return (
        value.model_dump(by_alias=True, exclude_none=True)
        if hasattr(value, "model_dump")
        else value
    )


class ResponseWriter:
    """One response's object and its stream events, numbered from 0.

    `model` is the model that answers (the fallback's when the router moved the call).
    """

    def __init__(self, response_id: str, body: ResponsesRequest, model: str) -> None:
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
        self._tools = [tool_object(tool, "responses") for tool in body.tool_specs()]

    def _event(self, kind: str, **data: Any) -> dict[str, Any]:
        event = {"type": kind, **data, "sequence_number": self.sequence}
        self.sequence += 1
        return event

    def response(self) -> dict[str, Any]:
        body = self.body
        extra = body.model_extra or {}
        text = _echo(body.text) if body.text is not None else {"format": {"type": "text"}}
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
            "metadata": body.metadata or {},
            "model": self.model,
            "output": list(self.output),
            "parallel_tool_calls": bool(extra.get("parallel_tool_calls", True)),
            "previous_response_id": body.previous_response_id,
            "store": body.store is not False,
            "temperature": body.temperature if body.temperature is not None else 1.0,
            "text": text,
            "tool_choice": _echo(body.tool_choice) if body.tool_choice is not None else "auto",
            "tools": self._tools,
            "top_p": extra.get("top_p", 1.0),
            "truncation": extra.get("truncation", "disabled"),
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
            events += self._call(index, call)
        self.usage = result.usage
        if incomplete:
            self.status, self.incomplete = "incomplete", "max_output_tokens"
        else:
            self.status = "completed"
        events.append(self._event(f"response.{self.status}", response=self.response()))
        return events

    def final(self, result: ModelResponse) -> dict[str, Any]:
        """Only the closing `response.completed` (or `.incomplete`) event, for a client that
        does not stream: the same response object, without the events before it."""
        text = result.text
        incomplete = result.finish_reason == "length"
        if text:
            status = "incomplete" if incomplete else "completed"
            self.output.append(message_item(self._message_id, text, status))
        for index, call in enumerate(result.tool_calls):
            item_id = f"fc_{self.id.removeprefix('resp_')}_{index}"
            self.output.append(call_item(item_id, call, done=True))
        self.usage = result.usage
        self.status = "incomplete" if incomplete else "completed"
        self.incomplete = "max_output_tokens" if incomplete else None
        return self._event(f"response.{self.status}", response=self.response())

    def _call(self, index: int, call: ToolCall) -> list[dict[str, Any]]:
        output_index = len(self.output)
        item_id = f"fc_{self.id.removeprefix('resp_')}_{index}"
        arguments = json.dumps(call.arguments)
        position = {"item_id": item_id, "output_index": output_index}
        done = call_item(item_id, call, done=True)
        self.output.append(done)
        return [
            self._event(
                "response.output_item.added",
                output_index=output_index,
                item=call_item(item_id, call, done=False),
            ),
            self._event("response.function_call_arguments.delta", **position, delta=arguments),
            self._event(
                "response.function_call_arguments.done",
                **position,
                name=call.name,
                arguments=arguments,
            ),
            self._event("response.output_item.done", output_index=output_index, item=done),
        ]

    def warm(self, usage: Usage) -> list[dict[str, Any]]:
        """`generate: false`: the conversation is held, nothing generated."""
        self.usage = usage
        self.status = "completed"
        return [self._event("response.completed", response=self.response())]

    def fail(self, code: str, message: str) -> list[dict[str, Any]]:
        self.status = "failed"
        self.error = {"code": code, "message": message}
        return [self._event("response.failed", response=self.response())]

    def cancel(self) -> None:
        self.status = "cancelled"
