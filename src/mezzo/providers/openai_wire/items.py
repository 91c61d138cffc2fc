"""Transcript items and tools in both OpenAI wire formats, and mezzo's neutral `Message`s.

In: pydantic models of what a client sends (Responses input items, Chat messages, function
tools in either shape), each turned into `Message`s / `ToolSpec`s. Out: `Message`s as
Responses input items (how an upstream receives a transcript, and how the gateway stores one)
or Chat messages. Only text and function tools are taken; other content (images, files, audio)
and hosted tools are refused by name.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Annotated, Any, Literal, Protocol

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from mezzo.providers.base import Message, ToolCall, ToolSpec, WireApi


class WireModel(BaseModel):
    """A wire object: strictly typed fields; fields it does not name are kept (OpenAI adds
    fields to its objects every few weeks, and echoes ids and statuses back in items)."""

    model_config = ConfigDict(strict=True, extra="allow", frozen=True)


def _tagged(default: str | None, field_name: str = "type") -> Callable[[Any], str | None]:
    """A discriminator: the object's `type` (or `default` where it has none) as its tag."""

    def tag(value: Any) -> str | None:
        if isinstance(value, dict):
            kind = value.get(field_name, default)
        else:
            kind = getattr(value, field_name, default)
        return f"tag:{kind}" if isinstance(kind, str) else None

    return tag


def _one_of(default: str | None, message: str, field_name: str = "type") -> Discriminator:
    return Discriminator(
        _tagged(default, field_name),
        custom_error_type="unsupported_value",
        custom_error_message=message,
    )


# ---- content ---------------------------------------------------------------------------------


class TextPart(WireModel):
    type: Literal["input_text", "output_text", "text"]
    text: str


class RefusalPart(WireModel):
    type: Literal["refusal"]
    refusal: str


ContentPart = Annotated[
    Annotated[TextPart, Tag("tag:input_text")]
    | Annotated[TextPart, Tag("tag:output_text")]
    | Annotated[TextPart, Tag("tag:text")]
    | Annotated[RefusalPart, Tag("tag:refusal")],
    _one_of(None, "mezzo's gateway takes text content only (input_text, output_text)"),
]


def _parts(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return [] if value is None else [{"type": "text", "text": value}]
    if isinstance(value, list):
        return value
    raise ValueError("expected a string or an array of content parts")


Content = Annotated[list[ContentPart], BeforeValidator(_parts)]


def text_of(parts: Iterable[TextPart | RefusalPart]) -> str:
    return "".join(p.text if isinstance(p, TextPart) else p.refusal for p in parts)


def _object_arguments(raw: str) -> dict[str, Any]:
    try:
        arguments = json.loads(raw or "{}")
    except json.JSONDecodeError:
        raise ValueError("not valid JSON") from None
    if not isinstance(arguments, dict):
        raise ValueError("must encode a JSON object")
    return arguments


def _append_call(messages: list[Message], call: ToolCall) -> None:
    """Calls of one assistant turn share one message (Chat Completions needs them together)."""
    last = messages[-1] if messages else None
    if last is not None and last.role == "assistant" and (last.tool_calls or last.content):
        messages[-1] = Message("assistant", last.content, (*last.tool_calls, call))
    else:
        messages.append(Message("assistant", "", (call,)))


# ---- Responses input items -------------------------------------------------------------------


class _Said(WireModel):
    """A message of text (a `developer` message is a system message to mezzo)."""

    role: Literal["user", "assistant", "system", "developer"]
    content: Content

    def add_to(self, messages: list[Message]) -> None:
        role = "system" if self.role == "developer" else self.role
        messages.append(Message(role, text_of(self.content)))


class MessageItem(_Said):
    type: Literal["message"] = "message"


class FunctionCallItem(WireModel):
    type: Literal["function_call"]
    call_id: str
    name: str
    arguments: str = "{}"

    @field_validator("arguments")
    @classmethod
    def _json_object(cls, value: str) -> str:
        _object_arguments(value)
        return value

    def add_to(self, messages: list[Message]) -> None:
        call = ToolCall(self.call_id, self.name, _object_arguments(self.arguments))
        _append_call(messages, call)


class FunctionCallOutputItem(WireModel):
    type: Literal["function_call_output"]
    call_id: str
    output: Content

    def add_to(self, messages: list[Message]) -> None:
        messages.append(Message("tool", text_of(self.output), call_id=self.call_id))


class ReasoningItem(WireModel):
    """A reasoning item echoed back by a client: not part of the neutral transcript."""

    type: Literal["reasoning"]

    def add_to(self, messages: list[Message]) -> None:
        return None


InputItem = Annotated[
    Annotated[MessageItem, Tag("tag:message")]
    | Annotated[FunctionCallItem, Tag("tag:function_call")]
    | Annotated[FunctionCallOutputItem, Tag("tag:function_call_output")]
    | Annotated[ReasoningItem, Tag("tag:reasoning")],
    _one_of(
        "message",
        "mezzo's gateway takes message, function_call, function_call_output and reasoning items",
    ),
]


def _input(value: Any) -> Any:
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    if isinstance(value, list):
        return value
    raise ValueError("expected a string or an array of items")


Input = Annotated[list[InputItem], BeforeValidator(_input)]


class Entry(Protocol):
    def add_to(self, messages: list[Message]) -> None: ...


def transcript(entries: Sequence[Entry]) -> list[Message]:
    """Responses input items, or Chat messages, as a neutral transcript."""
    messages: list[Message] = []
    for entry in entries:
        entry.add_to(messages)
    return messages


# ---- Chat messages ---------------------------------------------------------------------------


class ChatFunction(WireModel):
    name: str
    arguments: str = "{}"

    @field_validator("arguments")
    @classmethod
    def _json_object(cls, value: str) -> str:
        _object_arguments(value)
        return value


class ChatToolCall(WireModel):
    id: str
    type: Literal["function"] = "function"
    function: ChatFunction


class ChatPlainMessage(_Said):
    role: Literal["system", "developer", "user"]


class ChatAssistantMessage(WireModel):
    role: Literal["assistant"]
    content: Content = Field(default_factory=list)
    tool_calls: list[ChatToolCall] | None = None

    def add_to(self, messages: list[Message]) -> None:
        calls = tuple(
            ToolCall(c.id, c.function.name, _object_arguments(c.function.arguments))
            for c in self.tool_calls or ()
        )
        messages.append(Message("assistant", text_of(self.content), calls))


class ChatToolMessage(WireModel):
    role: Literal["tool"]
    tool_call_id: str
    content: Content

    def add_to(self, messages: list[Message]) -> None:
        messages.append(Message("tool", text_of(self.content), call_id=self.tool_call_id))


ChatMessage = Annotated[
    Annotated[ChatPlainMessage, Tag("tag:system")]
    | Annotated[ChatPlainMessage, Tag("tag:developer")]
    | Annotated[ChatPlainMessage, Tag("tag:user")]
    | Annotated[ChatAssistantMessage, Tag("tag:assistant")]
    | Annotated[ChatToolMessage, Tag("tag:tool")],
    _one_of(None, "role must be system, developer, user, assistant or tool", "role"),
]


# ---- tools -----------------------------------------------------------------------------------


class FunctionDefinition(WireModel):
    name: Annotated[str, Field(min_length=1, max_length=128)]
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class FunctionTool(WireModel):
    """A function tool in the Responses shape (`name` at the top) or the Chat shape
    (`function: {...}`); both are taken on both endpoints."""

    type: Literal["function"]
    function: FunctionDefinition | None = None
    name: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None

    @model_validator(mode="after")
    def _named(self) -> FunctionTool:
        if self.function is None and not self.name:
            raise ValueError("a function tool needs a name")
        return self

    def spec(self) -> ToolSpec:
        defined = self.function or FunctionDefinition(
            name=self.name or "",
            description=self.description,
            parameters=self.parameters,
            strict=self.strict,
        )
        return ToolSpec(
            defined.name,
            defined.description or "",
            defined.parameters or {"type": "object", "properties": {}},
            defined.strict,
        )


Tool = Annotated[
    Annotated[FunctionTool, Tag("tag:function")],
    _one_of(None, "mezzo's gateway takes function tools only"),
]


class FunctionChoice(WireModel):
    type: Literal["function"]
    name: str | None = None
    function: FunctionDefinition | None = None

    @model_validator(mode="after")
    def _named(self) -> FunctionChoice:
        if not self.name and self.function is None:
            raise ValueError("a function tool_choice needs a name")
        return self

    @property
    def tool_name(self) -> str:
        return self.name or (self.function.name if self.function else "")


ToolChoice = Literal["auto", "required", "none"] | FunctionChoice


def choice_name(choice: ToolChoice | None) -> str:
    """`auto`, `required`, `none`, or the name of the one tool the model must call."""
    if choice is None:
        return "auto"
    return choice if isinstance(choice, str) else choice.tool_name


# ---- out: neutral → wire ---------------------------------------------------------------------


def responses_items(messages: Iterable[Message]) -> list[dict[str, Any]]:
    """A transcript as Responses input items (an upstream's input; the gateway's store)."""
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


def chat_messages(messages: Iterable[Message]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "tool":
            result.append(
                {"role": "tool", "tool_call_id": message.call_id, "content": message.content}
            )
            continue
        entry: dict[str, Any] = {"role": message.role, "content": message.content}
        if message.tool_calls:
            entry["content"] = message.content or None
            entry["tool_calls"] = chat_tool_calls(message.tool_calls, indexed=False)
        result.append(entry)
    return result


def chat_tool_calls(calls: Sequence[ToolCall], *, indexed: bool) -> list[dict[str, Any]]:
    """Tool calls as Chat sends them: in a message, or (`indexed`) in a stream chunk."""
    wired = []
    for index, call in enumerate(calls):
        entry: dict[str, Any] = {
            "id": call.call_id,
            "type": "function",
            "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
        }
        wired.append({"index": index, **entry} if indexed else entry)
    return wired


def tool_object(spec: ToolSpec, api: WireApi) -> dict[str, Any]:
    """A tool as `api` declares it. Unsaid strictness is `false` for Responses (whose own
    default is `true`), so a tool means what it meant before strictness could be asked for."""
    strict = spec.strict if spec.strict is not None else (False if api == "responses" else None)
    function: dict[str, Any] = {
        "name": spec.name,
        "description": spec.description,
        "parameters": spec.parameters,
    }
    if strict is not None:
        function["strict"] = strict
    if api == "responses":
        return {"type": "function", **function}
    return {"type": "function", "function": function}


def tool_choice_object(choice: str, api: WireApi) -> Any:
    if choice in ("auto", "required", "none"):
        return choice
    if api == "responses":
        return {"type": "function", "name": choice}
    return {"type": "function", "function": {"name": choice}}
