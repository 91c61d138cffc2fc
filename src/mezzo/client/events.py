"""Typed events for SDK users: `match type(event): case AgentEvent.ToolCall: ...`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from mezzo.protocol import Event


@dataclass(frozen=True, slots=True)
class ToolInvocation:
    name: str
    args: dict[str, Any]


class AgentEvent:
    """Base of every event class; the subclasses are reachable as `AgentEvent.<Name>`."""

    type_name: ClassVar[str] = ""

    def __init__(self, event: Event) -> None:
        self.raw = event
        self.seq = event.seq
        self.workspace = event.workspace
        self.run = event.run
        self.type = event.type
        self.ts = event.ts
        self.data = event.data

    def __repr__(self) -> str:
        return f"AgentEvent.{type(self).__name__}(seq={self.seq}, run={self.run}, data={self.data})"

    @staticmethod
    def from_event(event: Event) -> AgentEvent:
        return _BY_TYPE.get(event.type, AgentEvent)(event)

    # Filled in below; declared for type checkers.
    RunQueued: ClassVar[type[AgentEvent]]
    RunStarted: ClassVar[type[AgentEvent]]
    ModelCall: ClassVar[type[AgentEvent]]
    ModelResult: ClassVar[type[AgentEvent]]
    Message: ClassVar[type[AgentEvent]]
    ToolCall: ClassVar[type[ToolCall]]
    ToolResult: ClassVar[type[AgentEvent]]
    Yield: ClassVar[type[Yield]]
    Input: ClassVar[type[AgentEvent]]
    BudgetAlert: ClassVar[type[BudgetAlert]]
    BudgetWait: ClassVar[type[AgentEvent]]
    BudgetExhausted: ClassVar[type[AgentEvent]]
    BudgetAdded: ClassVar[type[AgentEvent]]
    Suspended: ClassVar[type[AgentEvent]]
    Resumed: ClassVar[type[AgentEvent]]
    Throttled: ClassVar[type[AgentEvent]]
    RateLimited: ClassVar[type[AgentEvent]]
    Routed: ClassVar[type[AgentEvent]]
    Retry: ClassVar[type[AgentEvent]]
    Completed: ClassVar[type[Completed]]
    Failed: ClassVar[type[Failed]]
    Cancelled: ClassVar[type[AgentEvent]]
    Delta: ClassVar[type[Delta]]


class ToolCall(AgentEvent):
    type_name = "tool_call"

    def __init__(self, event: Event) -> None:
        super().__init__(event)
        self.call_id: str = event.data["call_id"]
        self.tool = ToolInvocation(event.data["name"], dict(event.data.get("arguments", {})))
        self.side: str = event.data.get("side", "client")


class Yield(AgentEvent):
    type_name = "yield"

    def __init__(self, event: Event) -> None:
        super().__init__(event)
        self.call_id: str = event.data["call_id"]
        self.question: str = event.data.get("question", "")


class BudgetAlert(AgentEvent):
    type_name = "budget_alert"

    def __init__(self, event: Event) -> None:
        super().__init__(event)
        self.threshold: float = event.data["threshold"]
        self.used: int = event.data["used"]
        self.budget: int = event.data["budget"]


class Completed(AgentEvent):
    type_name = "completed"

    def __init__(self, event: Event) -> None:
        super().__init__(event)
        self.output: str = event.data.get("output", "")


class Failed(AgentEvent):
    type_name = "failed"

    def __init__(self, event: Event) -> None:
        super().__init__(event)
        self.error: str = event.data.get("error", "")


class Delta(AgentEvent):
    type_name = "delta"

    def __init__(self, event: Event) -> None:
        super().__init__(event)
        self.text: str = event.data.get("text", "")


def _plain(name: str, type_name: str) -> type[AgentEvent]:
    return type(name, (AgentEvent,), {"type_name": type_name, "__slots__": ()})


_CLASSES: dict[str, type[AgentEvent]] = {
    "RunQueued": _plain("RunQueued", "run_queued"),
    "RunStarted": _plain("RunStarted", "run_started"),
    "ModelCall": _plain("ModelCall", "model_call"),
    "ModelResult": _plain("ModelResult", "model_result"),
    "Message": _plain("Message", "message"),
    "ToolCall": ToolCall,
    "ToolResult": _plain("ToolResult", "tool_result"),
    "Yield": Yield,
    "Input": _plain("Input", "input"),
    "BudgetAlert": BudgetAlert,
    "BudgetWait": _plain("BudgetWait", "budget_wait"),
    "BudgetExhausted": _plain("BudgetExhausted", "budget_exhausted"),
    "BudgetAdded": _plain("BudgetAdded", "budget_added"),
    "Suspended": _plain("Suspended", "suspended"),
    "Resumed": _plain("Resumed", "resumed"),
    "Throttled": _plain("Throttled", "throttled"),
    "RateLimited": _plain("RateLimited", "rate_limited"),
    "Routed": _plain("Routed", "routed"),
    "Retry": _plain("Retry", "retry"),
    "Completed": Completed,
    "Failed": Failed,
    "Cancelled": _plain("Cancelled", "cancelled"),
    "Delta": Delta,
}
for _name, _cls in _CLASSES.items():
    setattr(AgentEvent, _name, _cls)
_BY_TYPE: dict[str, type[AgentEvent]] = {cls.type_name: cls for cls in _CLASSES.values()}
