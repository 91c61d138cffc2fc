"""Wire models: events, requests and responses. The one source of truth for what crosses a wire."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    field_validator,
    model_validator,
)

from mezzo.bounds import ID_PATTERN, MAX_TOKENS
from mezzo.errors import UnknownEventType
from mezzo.text import checked_json, checked_text

EventType = Literal[
    "run_queued",
    "run_started",
    "model_call",
    "model_result",
    "message",
    "tool_call",
    "tool_result",
    "yield",
    "input",
    "budget_alert",
    "budget_wait",
    "budget_exhausted",
    "suspended",
    "resumed",
    "throttled",
    "rate_limited",
    "routed",
    "retry",
    "completed",
    "failed",
    "cancelled",
    "budget_added",
]
DURABLE_EVENT_TYPES: frozenset[str] = frozenset(EventType.__args__)  # type: ignore[attr-defined]
LIVE_EVENT_TYPES: frozenset[str] = frozenset({"delta"})
ALL_EVENT_TYPES = DURABLE_EVENT_TYPES | LIVE_EVENT_TYPES
# The events WebSocket closes with this code a subscriber that read slower than events came
# (4000 + 408), reason "behind: resume after seq N"; the client reconnects from the last seq it
# received (docs/architecture.md, "Delivery").
CLOSE_BEHIND = 4408

RunStatus = Literal[
    "queued",
    "running",
    "awaiting_tool",
    "awaiting_input",
    "suspended",
    "completed",
    "failed",
    "cancelled",
]
TERMINAL_STATUSES: frozenset[str] = frozenset({"completed", "failed", "cancelled"})
# The event types that end a run (each sets the run's status of the same name).
TERMINAL_EVENT_TYPES: frozenset[str] = TERMINAL_STATUSES
Priority = Literal["high", "normal", "low"]
FallbackBehavior = Literal["suspend", "fail", "downgrade"]
ToolSide = Literal["client", "server"]

# Every string a client sends is `Text` and every free-form object a `JsonObject`: no lone
# UTF-16 surrogate gets in (it would break every later read), and no object nests too deeply.
Text = Annotated[str, AfterValidator(checked_text)]
JsonObject = Annotated[dict[str, Any], AfterValidator(checked_json)]
Id = Annotated[str, Field(pattern=ID_PATTERN.pattern)]


def _json_number(value: Any) -> Any:
    """A number as JSON writes one: `true` is no number and `"5"` no integer (pydantic's lax
    mode takes both), while `5.0` is the integer 5 (as JSON Schema reads it)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a JSON number")
    return value


# Numbers of request bodies: bounds first, so that the JSON schema shows them.
JsonNumber = BeforeValidator(_json_number)
Tokens = Annotated[int, Field(gt=0, le=MAX_TOKENS), JsonNumber]
Steps = Annotated[int, Field(gt=0, le=10_000), JsonNumber]
Share = Annotated[float, Field(gt=0, le=1, allow_inf_nan=False), JsonNumber]


class Strict(BaseModel):
    """Request bodies: unknown fields are an error, not silently dropped, and a value must have
    its documented JSON type (`JsonNumber`, `StrictBool`)."""

    model_config = ConfigDict(extra="forbid")


class Event(BaseModel):
    """One entry of a workspace's ordered log. `seq` is gap-free per workspace.

    Live-only events (`delta`) carry `seq=None` and are never stored.
    """

    seq: int | None
    workspace: str
    run: str | None
    type: str
    ts: float
    data: dict[str, Any] = Field(default_factory=dict)


class NewEvent(BaseModel):
    """An event before the store has given it a seq and a timestamp."""

    type: str
    data: dict[str, Any] = Field(default_factory=dict)


# ---- event payloads -------------------------------------------------------------------------


class ToolCallData(BaseModel):
    call_id: str
    name: str
    arguments: dict[str, Any]
    side: ToolSide
    step: int = 0


class ToolResultData(BaseModel):
    call_id: str
    name: str
    output: str
    is_error: bool = False


class UsageData(BaseModel):
    input_tokens: int
    output_tokens: int


class ModelCallData(BaseModel):
    step: int
    route: str
    provider: str
    model: str
    reservation: str
    reserved_tokens: int
    estimated_input_tokens: int
    max_output_tokens: int


class ModelResultData(BaseModel):
    step: int
    model: str
    text: str
    tool_calls: list[ToolCallData] = Field(default_factory=list)
    usage: UsageData
    usage_reported: bool = True
    finish_reason: str = "stop"
    reservation: str = ""


class YieldData(BaseModel):
    call_id: str
    question: str


class InputData(BaseModel):
    call_id: str
    text: str


class BudgetAlertData(BaseModel):
    threshold: float
    used: int
    budget: int


class BudgetExhaustedData(BaseModel):
    needed: int
    remaining: int
    budget: int


class RunQueuedData(BaseModel):
    input: str
    priority: Priority
    max_steps: int
    metadata: dict[str, str] = Field(default_factory=dict)


# ---- workspaces ---------------------------------------------------------------------------


# Fields of OpenAI's function tools that mezzo does not act on, with the values that mean
# "not used": a declaration carrying one of these values is taken, any other value is refused.
_UNUSED_FUNCTION_FIELDS: dict[str, tuple[Any, ...]] = {
    "defer_loading": (None, False),
    "async": (None, False),
    "output_schema": (None,),
    "allowed_callers": (None, ["direct"]),
}


def _empty_parameters() -> dict[str, Any]:
    return {"type": "object", "properties": {}}


class ToolDecl(Strict):
    """A tool offered to the model: a client-side schema, or the name of a server-side tool.

    Accepted as written for OpenAI's APIs as well as in mezzo's own shape:
    the Responses shape `{"type": "function", "name", "description", "parameters", "strict"}`
    and the Chat Completions shape `{"type": "function", "function": {...}}`. `strict` is kept
    as declared (None: not said) so that a route able to enforce the schema can honour it.
    """

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    description: Text = ""
    parameters: JsonObject = Field(default_factory=_empty_parameters)
    side: ToolSide = "client"
    strict: StrictBool | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_openai_shapes(cls, value: Any) -> Any:
        if not isinstance(value, dict) or "type" not in value:
            return value
        if value["type"] != "function":
            raise ValueError(
                f"tool type {value['type']!r} is not supported: only function tools can be "
                "declared (a hosted tool of a provider cannot run here)"
            )
        fields = {k: v for k, v in value.items() if k != "type"}
        if "function" in fields:  # the Chat Completions shape nests the function
            nested = fields.pop("function")
            if not isinstance(nested, dict):
                raise ValueError("'function' must be an object with the tool's name and schema")
            both = sorted(set(fields) & set(nested))
            if both:
                shown = ", ".join(map(repr, both))
                raise ValueError(f"{shown} given both at the top level and under 'function'")
            fields.update(nested)
        for field, unused in _UNUSED_FUNCTION_FIELDS.items():
            if field not in fields:
                continue
            if fields[field] not in unused:
                raise ValueError(f"{field!r} is not supported on mezzo's tools")
            del fields[field]
        if "name" not in fields:
            raise ValueError("a function tool needs a 'name'")
        for field in ("description", "parameters"):
            if fields.get(field, "") is None:
                del fields[field]
        return fields


class WorkspaceConfig(Strict):
    route: Text = "default"
    instructions: Text = ""
    tools: list[ToolDecl] = Field(default_factory=list)
    budget_tokens: Tokens = 1_000_000
    alert_thresholds: list[Share] = Field(default_factory=lambda: [0.9])
    fallback_behavior: FallbackBehavior = "suspend"
    priority: Priority = "normal"
    max_steps: Steps = 50
    # Offer the built-in `request_human_input` tool (the run yields and waits for an answer).
    human_input: StrictBool = True

    @field_validator("alert_thresholds")
    @classmethod
    def _sorted_thresholds(cls, value: list[float]) -> list[float]:
        return sorted(set(value))

    @field_validator("tools")
    @classmethod
    def _unique_tool_names(cls, value: list[ToolDecl]) -> list[ToolDecl]:
        names = [tool.name for tool in value]
        if len(names) != len(set(names)):
            raise ValueError("tool names must be unique")
        return value


class CreateWorkspace(WorkspaceConfig):
    id: Id | None = None


class Workspace(BaseModel):
    id: str
    tenant: str
    config: WorkspaceConfig
    throttle_rate: float = 1.0
    created_at: float
    budget: BudgetView
    head_seq: int = 0


class BudgetView(BaseModel):
    budget_tokens: int
    committed: int
    reserved: int

    @property
    def remaining(self) -> int:
        return self.budget_tokens - self.committed - self.reserved


# ---- runs -------------------------------------------------------------------------------------


class SubmitRun(Strict):
    input: Annotated[Text, Field(min_length=1)]
    priority: Priority | None = None
    max_steps: Steps | None = None
    metadata: dict[Text, Text] = Field(default_factory=dict)


class RunAccepted(BaseModel):
    run: str
    workspace: str
    status: RunStatus
    seq: int
    events_url: str
    run_url: str


class PendingToolCall(BaseModel):
    call_id: str
    name: str
    arguments: dict[str, Any]


class RunView(BaseModel):
    id: str
    workspace: str
    status: RunStatus
    input: str
    output: str | None
    error: str | None
    steps: int
    usage: UsageData
    pending_tool_calls: list[PendingToolCall]
    pending_input: YieldData | None
    version: int
    priority: Priority
    route: str | None = None


class ToolResultIn(Strict):
    call_id: Annotated[Text, Field(min_length=1)]
    output: Text
    is_error: StrictBool = False


class ToolResultsIn(Strict):
    results: Annotated[list[ToolResultIn], Field(min_length=1)]


class InputIn(Strict):
    text: Text


class CancelIn(Strict):
    reason: Text = "cancelled by client"


class ThrottleIn(Strict):
    rate: Share


class BudgetIn(Strict):
    add_tokens: Tokens


class ErrorBody(BaseModel):
    error: str
    detail: Any = None


Workspace.model_rebuild()


def parse_types(types: str | Sequence[str] | None) -> list[str] | None:
    """Event type names from a filter (a comma-separated string or a list); None for all."""
    if types is None:
        return None
    names = [
        t.strip() for t in (types.split(",") if isinstance(types, str) else types) if t.strip()
    ]
    unknown = sorted(set(names) - ALL_EVENT_TYPES)
    if unknown:
        raise UnknownEventType(f"unknown event types: {', '.join(unknown)}")
    return names or None
