"""Request bodies of both OpenAI APIs in, upstream request parameters out.

In: `ResponsesRequest` and `ChatRequest` validate a client's body (strict types; fields they do
not name are kept, as the API adds fields every few weeks) and make the neutral
`ModelRequest`: transcript, tools, structured output, `stop`/`seed`/`n`, and every field mezzo
does not interpret as `extra`, tagged with the API it came in.

Out: `responses_params` / `chat_params` make an upstream's request from a `ModelRequest`.
`extra` is passed as it is to a backend of the same API; to the other API only the fields that
mean the same there are passed (`forwarded`), and the rest are named as dropped so the caller
can say so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from mezzo.providers.base import Message, ModelRequest, ResponseFormat, ToolSpec, WireApi
from mezzo.providers.openai_wire.items import (
    ChatMessage,
    Input,
    Tool,
    ToolChoice,
    WireModel,
    chat_messages,
    choice_name,
    responses_items,
    tool_choice_object,
    tool_object,
    transcript,
)

# Fields that mean the same in both APIs, so they cross from one to the other.
SHARED_FIELDS = frozenset(
    {
        "top_p",
        "parallel_tool_calls",
        "user",
        "service_tier",
        "prompt_cache_key",
        "prompt_cache_retention",
        "safety_identifier",
        "top_logprobs",
    }
)
# Fields mezzo answers itself, never passed on (the gateway streams and stores as it chooses).
_CONSUMED = frozenset({"stream_options"})
# Bounds the stores and the APIs share (OpenAI's own limits where it has them).
MAX_TOKENS = 2**31 - 1
MAX_STOP = 4


# ---- structured output -----------------------------------------------------------------------


def _json_schema_format(
    name: str | None, schema: dict[str, Any] | None, strict: bool | None, description: str | None
) -> tuple[ResponseFormat, dict[str, Any]]:
    return (
        ResponseFormat("json_schema", name or "response", description, strict),
        schema if schema is not None else {},
    )


class TextFormat(WireModel):
    """Responses `text.format`."""

    type: Literal["text", "json_schema", "json_object"]
    name: str | None = None
    json_schema: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None
    description: str | None = None

    @model_validator(mode="after")
    def _has_schema(self) -> TextFormat:
        if self.type == "json_schema" and (self.json_schema is None or not self.name):
            raise ValueError("a json_schema format needs a `name` and a `schema`")
        return self

    def neutral(self) -> tuple[ResponseFormat, dict[str, Any]] | None:
        if self.type == "text":
            return None
        if self.type == "json_object":
            return ResponseFormat("json_object"), {"type": "object"}
        return _json_schema_format(self.name, self.json_schema, self.strict, self.description)


class TextConfig(WireModel):
    format: TextFormat | None = None


class ChatJsonSchema(WireModel):
    name: str
    json_schema: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None
    description: str | None = None


class ChatResponseFormat(WireModel):
    """Chat Completions `response_format`."""

    type: Literal["text", "json_schema", "json_object"]
    json_schema: ChatJsonSchema | None = None

    @model_validator(mode="after")
    def _has_schema(self) -> ChatResponseFormat:
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("a json_schema response_format needs `json_schema`")
        return self

    def neutral(self) -> tuple[ResponseFormat, dict[str, Any]] | None:
        if self.type == "text":
            return None
        if self.type == "json_object" or self.json_schema is None:
            return ResponseFormat("json_object"), {"type": "object"}
        spec = self.json_schema
        return _json_schema_format(spec.name, spec.json_schema, spec.strict, spec.description)


def _format_fields(
    shaped: tuple[ResponseFormat, dict[str, Any]] | None,
) -> dict[str, Any]:
    if shaped is None:
        return {}
    fmt, schema = shaped
    return {"response_format": fmt, "response_schema": schema}


# ---- request bodies --------------------------------------------------------------------------

PositiveInt = Annotated[int, Field(ge=1, le=MAX_TOKENS)]
Temperature = Annotated[float, Field(ge=0, le=2)]


class ResponsesRequest(WireModel):
    """A `POST /v1/responses` body (also a WebSocket `response.create`)."""

    model: str = ""
    input: Input = Field(default_factory=list)
    instructions: str | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    previous_response_id: str | None = None
    store: bool | None = None
    stream: bool | None = None
    # The Responses API's own minimum.
    max_output_tokens: Annotated[int, Field(ge=16, le=MAX_TOKENS)] | None = None
    temperature: Temperature | None = None
    metadata: dict[str, str] | None = None
    generate: bool | None = None
    background: bool | None = None
    text: TextConfig | None = None
    conversation: Any = None
    stream_options: Any = None

    def transcript(self) -> list[Message]:
        return transcript(self.input)

    def tool_specs(self) -> tuple[ToolSpec, ...]:
        return tuple(tool.spec() for tool in self.tools or ())

    def extra(self) -> dict[str, Any]:
        """What mezzo does not interpret: every unnamed field, and `text` without `format`."""
        extra = {k: v for k, v in (self.model_extra or {}).items() if k not in _CONSUMED}
        if self.text is not None and self.text.model_extra:
            extra["text"] = dict(self.text.model_extra)
        return extra

    def model_request(self, model: str, history: tuple[Message, ...] = ()) -> ModelRequest:
        """The request for `model`: instructions, `history` (a previous response's
        transcript), then this body's input."""
        system = (Message("system", self.instructions),) if self.instructions else ()
        shaped = self.text.format.neutral() if self.text and self.text.format else None
        return ModelRequest(
            model=model,
            messages=(*system, *history, *self.transcript()),
            tools=self.tool_specs(),
            max_output_tokens=self.max_output_tokens,
            temperature=self.temperature,
            tool_choice=choice_name(self.tool_choice),
            extra=self.extra(),
            extra_api="responses",
            **_format_fields(shaped),
        )


def _stops(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class StreamOptions(WireModel):
    include_usage: bool | None = None


class ChatRequest(WireModel):
    """A `POST /v1/chat/completions` body."""

    model: str = ""
    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    # Any positive count: health checks send `max_tokens=1`.
    max_tokens: PositiveInt | None = None
    max_completion_tokens: PositiveInt | None = None
    temperature: Temperature | None = None
    response_format: ChatResponseFormat | None = None
    stop: Annotated[
        Annotated[list[Annotated[str, Field(min_length=1)]], Field(max_length=MAX_STOP)] | None,
        BeforeValidator(_stops),
    ] = None
    seed: Annotated[int, Field(ge=-(2**63), le=2**63 - 1)] | None = None
    n: Annotated[int, Field(ge=1, le=128)] | None = None

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    def model_request(self, model: str) -> ModelRequest:
        shaped = self.response_format.neutral() if self.response_format else None
        extra = {k: v for k, v in (self.model_extra or {}).items() if k not in _CONSUMED}
        return ModelRequest(
            model=model,
            messages=tuple(transcript(self.messages)),
            tools=tuple(tool.spec() for tool in self.tools or ()),
            max_output_tokens=self.max_completion_tokens or self.max_tokens,
            temperature=self.temperature,
            tool_choice=choice_name(self.tool_choice),
            stop=tuple(self.stop or ()),
            seed=self.seed,
            n=self.n or 1,
            extra=extra,
            extra_api="chat",
            **_format_fields(shaped),
        )


# ---- out: a ModelRequest to an upstream of either API ----------------------------------------


def forwarded(request: ModelRequest, api: WireApi | None) -> tuple[dict[str, Any], list[str]]:
    """The request's uninterpreted fields as a backend of `api` takes them (None: a backend
    that takes none), and the names of those it cannot take (`seed` included where the API has
    no seed)."""
    dropped: list[str] = []
    if request.seed is not None and api != "chat":
        dropped.append("seed")
    extra, origin = request.extra, request.extra_api
    if not extra:
        return {}, dropped
    if api is None:
        return {}, sorted([*dropped, *extra])
    if origin == api:
        return dict(extra), dropped
    fields: dict[str, Any] = {}
    for name, value in extra.items():
        if name in SHARED_FIELDS:
            fields[name] = value
        elif not _translate(name, value, api, fields):
            dropped.append(name)
    return fields, sorted(dropped)


def _translate(name: str, value: Any, api: WireApi, into: dict[str, Any]) -> bool:
    """The few fields whose name differs: Chat `reasoning_effort` / `verbosity` are Responses
    `reasoning.effort` / `text.verbosity`."""
    if api == "responses" and name == "reasoning_effort":
        into["reasoning"] = {"effort": value}
    elif api == "responses" and name == "verbosity":
        into["text"] = {"verbosity": value}
    elif api == "chat" and name == "reasoning" and isinstance(value, Mapping):
        if set(value) - {"effort"}:
            return False
        into["reasoning_effort"] = value.get("effort")
    elif api == "chat" and name == "text" and isinstance(value, Mapping):
        if set(value) - {"verbosity"}:
            return False
        into["verbosity"] = value.get("verbosity")
    else:
        return False
    return True


def _merge(params: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    """`fields` added to `params` without replacing what mezzo set (objects merged)."""
    for name, value in fields.items():
        mine = params.get(name)
        if isinstance(mine, dict) and isinstance(value, Mapping):
            params[name] = {**value, **mine}
        else:
            params.setdefault(name, value)
    return params


def responses_params(request: ModelRequest, *, store: bool) -> dict[str, Any]:
    params: dict[str, Any] = {
        "model": request.model,
        "input": responses_items(request.messages),
        "store": store,
    }
    if request.tools:
        params["tools"] = [tool_object(tool, "responses") for tool in request.tools]
        params["tool_choice"] = tool_choice_object(request.tool_choice, "responses")
    if request.max_output_tokens is not None:
        params["max_output_tokens"] = request.max_output_tokens
    if request.temperature is not None:
        params["temperature"] = request.temperature
    fmt = request.response_format
    if fmt is not None:
        wired = {"type": fmt.type, **_json_schema(request)} if fmt.type == "json_schema" else {}
        params["text"] = {"format": wired or {"type": fmt.type}}
    return _merge(params, forwarded(request, "responses")[0])


def _json_schema(request: ModelRequest) -> dict[str, Any]:
    """A `json_schema` format's fields (both APIs spell them alike, Chat nests them)."""
    fmt = request.response_format
    assert fmt is not None
    schema: dict[str, Any] = {"name": fmt.name, "schema": request.response_schema}
    if fmt.strict is not None:
        schema["strict"] = fmt.strict
    if fmt.description is not None:
        schema["description"] = fmt.description
    return schema


def chat_params(request: ModelRequest, *, stream: bool = True) -> dict[str, Any]:
    params: dict[str, Any] = {
        "model": request.model,
        "messages": chat_messages(request.messages),
    }
    if stream:
        params["stream_options"] = {"include_usage": True}
    if request.tools:
        params["tools"] = [tool_object(tool, "chat") for tool in request.tools]
        params["tool_choice"] = tool_choice_object(request.tool_choice, "chat")
    if request.max_output_tokens is not None:
        params["max_completion_tokens"] = request.max_output_tokens
    if request.temperature is not None:
        params["temperature"] = request.temperature
    fmt = request.response_format
    if fmt is not None:
        params["response_format"] = (
            {"type": "json_schema", "json_schema": _json_schema(request)}
            if fmt.type == "json_schema"
            else {"type": "json_object"}
        )
    if request.stop:
        params["stop"] = list(request.stop)
    if request.seed is not None:
        params["seed"] = request.seed
    if request.n > 1:
        params["n"] = request.n
    return _merge(params, forwarded(request, "chat")[0])
