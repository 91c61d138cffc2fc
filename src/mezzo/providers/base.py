"""The one interface every model backend implements.

A provider turns a `ModelRequest` (a neutral chat transcript plus tool specs) into a stream of
`TextDelta` chunks followed by exactly one `ModelResponse`. Providers know nothing of
workspaces, budgets or events; the engine and the governor wrap them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True, slots=True)
class ToolCall:
    call_id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Message:
    """One item of a transcript.

    `role="assistant"` may carry `tool_calls`; `role="tool"` carries the output of the call
    named by `call_id` in `content`.
    """

    role: Role
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    call_id: str | None = None


@dataclass(frozen=True, slots=True)
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ModelRequest:
    model: str
    messages: tuple[Message, ...]
    tools: tuple[ToolSpec, ...] = ()
    max_output_tokens: int | None = None
    temperature: float | None = None
    # "auto" lets the model choose; "required" forces some tool; a tool name forces that tool.
    tool_choice: str = "auto"
    # A JSON schema the answer text must satisfy (structured output); None for free text.
    response_schema: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int
    output_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ModelResponse:
    model: str
    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    # None when the backend reported no usage; the governor then charges the reservation.
    usage: Usage | None = None
    finish_reason: str = "stop"
    headers: dict[str, str] = field(default_factory=dict)


Chunk = TextDelta | ModelResponse


class ProviderError(Exception):
    """A failure of the backend, classified so the governor can react to it."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        retryable: bool = True,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        self.retryable = retryable
        self.headers = headers or {}


class Provider(Protocol):
    name: str

    def stream(self, request: ModelRequest) -> AsyncIterator[Chunk]:
        """Yield zero or more `TextDelta`s, then exactly one `ModelResponse`.

        Raises `ProviderError` on failure. Cancelling the consuming task must stop generation.
        """
        ...

    async def aclose(self) -> None: ...
