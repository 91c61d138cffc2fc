"""The one interface every model backend implements.

A provider turns a `ModelRequest` (a neutral chat transcript plus tool specs) into a stream of
`TextDelta` chunks followed by exactly one `ModelResponse`. Providers know nothing of
workspaces, budgets or events; the engine and the governor wrap them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Role = Literal["system", "user", "assistant", "tool"]
# The two OpenAI wire APIs a request may come from and a backend may speak.
WireApi = Literal["responses", "chat"]


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
    # OpenAI's strict function calling: True/False as the caller asked, None when unsaid.
    strict: bool | None = None


@dataclass(frozen=True, slots=True)
class ResponseFormat:
    """Structured output as the caller asked for it: `json_schema` (the schema itself is
    `ModelRequest.response_schema`) or `json_object` (any JSON object)."""

    type: Literal["json_schema", "json_object"]
    name: str = "response"
    description: str | None = None
    strict: bool | None = None


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
    # How the caller asked for structured output (name, strictness), for backends that take it.
    response_format: ResponseFormat | None = None
    # Text that ends the answer where it appears (not included); Chat Completions' `stop`.
    stop: tuple[str, ...] = ()
    seed: int | None = None
    # Chat Completions' `n`: how many answers to generate for the one prompt.
    n: int = 1
    # Fields of the caller's request that mezzo does not interpret, in the wire format of
    # `extra_api`: passed as they are to a backend that speaks that API, dropped elsewhere.
    extra: Mapping[str, Any] = field(default_factory=dict)
    extra_api: WireApi | None = None


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
    # Which answer it belongs to when `n` > 1.
    index: int = 0


@dataclass(frozen=True, slots=True)
class Choice:
    """One more answer to the same prompt (`n` > 1): the second, third, ..."""

    index: int
    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str = "stop"


@dataclass(frozen=True, slots=True)
class ModelResponse:
    model: str
    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    # None when the backend reported no usage; the governor then charges the reservation.
    usage: Usage | None = None
    finish_reason: str = "stop"
    headers: dict[str, str] = field(default_factory=dict)
    # The answers after the first when `n` > 1 (their usage is included in `usage`).
    choices: tuple[Choice, ...] = ()


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
