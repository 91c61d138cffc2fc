"""The Responses API wire format: the response object and its stream of events."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from mezzo.stub.answer import Answer, Frame

MIDWAY_FAILURE = "The server had an error while processing your request (injected by the stub)."


def _item_id(answer: Answer, prefix: str) -> str:
    return f"{prefix}_{answer.id.removeprefix('resp_')}"


def _usage(answer: Answer) -> dict[str, Any]:
    return {
        "input_tokens": answer.input_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": answer.reply.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": answer.total_tokens,
    }


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def output_item(answer: Answer, *, done: bool) -> dict[str, Any]:
    reply = answer.reply
    status = "completed" if done else "in_progress"
    if reply.call is not None:
        return {
            "id": _item_id(answer, "fc"),
            "type": "function_call",
            "status": status,
            "call_id": reply.call.call_id,
            "name": reply.call.name,
            "arguments": reply.call.arguments if done else "",
        }
    if done and reply.truncated:
        status = "incomplete"
    return {
        "id": _item_id(answer, "msg"),
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": [_text_part(reply.text)] if done else [],
    }


def final_status(answer: Answer) -> str:
    return "incomplete" if answer.reply.truncated else "completed"


def response_object(answer: Answer, *, status: str) -> dict[str, Any]:
    body = answer.body
    finished = status in ("completed", "incomplete")
    return {
        "id": answer.id,
        "object": "response",
        "created_at": answer.created,
        "status": status,
        "completed_at": answer.created if status == "completed" else None,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "metadata": body.get("metadata") or {},
        "model": answer.model,
        "output": [output_item(answer, done=True)] if finished and answer.generated else [],
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": _usage(answer) if finished else None,
    }


def stream(answer: Answer) -> Iterator[Frame]:
    """The events OpenAI sends for one response, `sequence_number` from 0."""
    reply = answer.reply
    if not answer.generated:
        created: dict[str, Any] = {
            "type": "response.created",
            "response": response_object(answer, status="in_progress"),
        }
        completed: dict[str, Any] = {
            "type": "response.completed",
            "response": response_object(answer, status="completed"),
        }
        for number, data in enumerate((created, completed)):
            data["sequence_number"] = number
            yield Frame(data, event=data["type"])
        return
    item_id = output_item(answer, done=False)["id"]
    events: list[tuple[dict[str, Any], bool]] = [
        (
            {"type": "response.created", "response": response_object(answer, status="in_progress")},
            False,
        ),
        (
            {
                "type": "response.in_progress",
                "response": response_object(answer, status="in_progress"),
            },
            False,
        ),
        (
            {
                "type": "response.output_item.added",
                "output_index": 0,
                "item": output_item(answer, done=False),
            },
            False,
        ),
    ]
    if reply.call is not None:
        position = {"item_id": item_id, "output_index": 0}
        events += [
            ({"type": "response.function_call_arguments.delta", **position, "delta": piece}, True)
            for piece in reply.pieces
        ]
        events.append(
            (
                {
                    "type": "response.function_call_arguments.done",
                    **position,
                    "name": reply.call.name,
                    "arguments": reply.call.arguments,
                },
                False,
            )
        )
    else:
        position = {"item_id": item_id, "output_index": 0, "content_index": 0}
        events.append(
            ({"type": "response.content_part.added", **position, "part": _text_part("")}, False)
        )
        events += [
            (
                {"type": "response.output_text.delta", **position, "delta": piece, "logprobs": []},
                True,
            )
            for piece in reply.pieces
        ]
        events += [
            (
                {
                    "type": "response.output_text.done",
                    **position,
                    "text": reply.text,
                    "logprobs": [],
                },
                False,
            ),
            (
                {"type": "response.content_part.done", **position, "part": _text_part(reply.text)},
                False,
            ),
        ]
    if answer.fails_midway:
        events = events[: 3 + (reply.call is None) + answer.tokens_before_failure]
        failed = response_object(answer, status="failed")
        failed["error"] = {"code": "server_error", "message": MIDWAY_FAILURE}
        events.append(({"type": "response.failed", "response": failed}, False))
    else:
        status = final_status(answer)
        events += [
            (
                {
                    "type": "response.output_item.done",
                    "output_index": 0,
                    "item": output_item(answer, done=True),
                },
                False,
            ),
            (
                {"type": f"response.{status}", "response": response_object(answer, status=status)},
                False,
            ),
        ]
    for number, (data, token) in enumerate(events):
        data["sequence_number"] = number
        yield Frame(data, token=token, event=data["type"])


def error_event(message: str, code: str, sequence_number: int = 0) -> dict[str, Any]:
    return {
        "type": "error",
        "code": code,
        "message": message,
        "param": None,
        "sequence_number": sequence_number,
    }
