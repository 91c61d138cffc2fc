"""One admitted request, ready to be written in either API's wire format."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mezzo.stub.behaviour import Reply
from mezzo.stub.transcript import Item


@dataclass(frozen=True, slots=True)
class Answer:
    id: str
    model: str
    created: int
    items: list[Item]
    reply: Reply
    input_tokens: int
    # The request body, for echoing settings (tools, instructions, ...) back as OpenAI does.
    body: dict[str, Any] = field(default_factory=dict)
    # An injected fault: the stream breaks off with an error after half of the output.
    fails_midway: bool = False

    @property
    def tokens_before_failure(self) -> int:
        return len(self.reply.pieces) // 2

    @property
    def generated(self) -> bool:
        """False for a WebSocket warm-up (`generate: false`), which has no output at all."""
        return self.body.get("generate") is not False

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.reply.output_tokens


@dataclass(frozen=True, slots=True)
class Frame:
    """One event of a stream; `token` marks a frame that carries output and is paced."""

    data: dict[str, Any]
    token: bool = False
    # The SSE `event:` name (Responses API); None for Chat Completions chunks.
    event: str | None = None


def transcript_after(answer: Answer) -> list[Item]:
    """The conversation a later `previous_response_id` continues: the input plus the output."""
    call = answer.reply.call
    if call is not None:
        output = Item(
            "function_call",
            role="assistant",
            call_id=call.call_id,
            name=call.name,
            text=call.arguments,
        )
    else:
        output = Item("message", role="assistant", text=answer.reply.text)
    return [*answer.items, output]
