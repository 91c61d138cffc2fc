"""Fold a run's events into its state. Pure: no I/O, same events give the same state."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from mezzo.protocol import (
    TERMINAL_STATUSES,
    Event,
    ModelCallData,
    ModelResultData,
    ToolCallData,
    YieldData,
)
from mezzo.providers.base import Message, ToolCall


@dataclass(slots=True)
class RunState:
    run: str
    workspace: str
    version: int = 0
    status: str = "queued"
    input: str = ""
    priority: str = "normal"
    max_steps: int = 50
    transcript: list[Message] = field(default_factory=list)
    steps: int = 0
    open_model_call: ModelCallData | None = None
    last_result: ModelResultData | None = None
    pending_calls: dict[str, ToolCallData] = field(default_factory=dict)
    pending_yield: YieldData | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    output: str | None = None
    error: str | None = None
    downgraded: bool = False
    # The current step waits for budget that other calls hold (`budget_wait` was logged).
    waiting_for_budget: bool = False
    route: str | None = None
    last_seq: int = 0

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def pending_client_calls(self) -> list[ToolCallData]:
        return [call for call in self.pending_calls.values() if call.side == "client"]

    @property
    def pending_server_calls(self) -> list[ToolCallData]:
        waiting_input = self.pending_yield.call_id if self.pending_yield else None
        return [
            call
            for call in self.pending_calls.values()
            if call.side == "server" and call.call_id != waiting_input
        ]

    def waiting_status(self) -> str:
        if self.pending_yield is not None:
            return "awaiting_input"
        if self.pending_client_calls:
            return "awaiting_tool"
        return "running"


def _apply(state: RunState, event: Event) -> None:
    data: dict[str, Any] = event.data
    kind = event.type
    state.version += 1
    if event.seq is not None:
        state.last_seq = event.seq
    if state.terminal:
        return
    if kind == "run_queued":
        state.input = data["input"]
        state.priority = data.get("priority", "normal")
        state.max_steps = data.get("max_steps", 50)
        state.transcript.append(Message(role="user", content=state.input))
        state.status = "queued"
    elif kind == "run_started":
        state.status = "running" if state.status == "queued" else state.status
    elif kind == "model_call":
        call = ModelCallData.model_validate(data)
        state.waiting_for_budget = False
        state.open_model_call = call
        state.route = call.route
        state.status = "running"
    elif kind == "model_result":
        result = ModelResultData.model_validate(data)
        state.open_model_call = None
        state.last_result = result
        state.steps = max(state.steps, result.step)
        state.input_tokens += result.usage.input_tokens
        state.output_tokens += result.usage.output_tokens
        calls = tuple(ToolCall(c.call_id, c.name, c.arguments) for c in result.tool_calls)
        state.transcript.append(Message(role="assistant", content=result.text, tool_calls=calls))
    elif kind == "tool_call":
        pending = ToolCallData.model_validate(data)
        state.pending_calls[pending.call_id] = pending
        state.status = state.waiting_status()
    elif kind == "yield":
        asked = YieldData.model_validate(data)
        state.pending_yield = asked
        state.pending_calls[asked.call_id] = ToolCallData(
            call_id=asked.call_id,
            name="request_human_input",
            arguments={"question": asked.question},
            side="server",
        )
        state.status = "awaiting_input"
    elif kind == "input":
        state.pending_yield = None
    elif kind == "tool_result":
        call_id = data["call_id"]
        if state.pending_calls.pop(call_id, None) is not None:
            state.transcript.append(Message(role="tool", content=data["output"], call_id=call_id))
        if state.pending_yield is not None and state.pending_yield.call_id == call_id:
            state.pending_yield = None
        state.status = state.waiting_status()
    elif kind == "budget_wait":
        state.waiting_for_budget = True
    elif kind == "suspended":
        state.waiting_for_budget = False
        state.status = "suspended"
    elif kind == "resumed":
        state.status = "queued"
    elif kind == "routed":
        state.downgraded = state.downgraded or data.get("reason") == "budget_downgrade"
    elif kind == "completed":
        state.status = "completed"
        state.output = data.get("output", "")
    elif kind == "failed":
        state.status = "failed"
        state.error = data.get("error", "failed")
    elif kind == "cancelled":
        state.status = "cancelled"
        state.error = data.get("reason")


def fold(events: Iterable[Event], state: RunState) -> RunState:
    for event in events:
        _apply(state, event)
    return state


def fold_new(run: str, workspace: str, events: Iterable[Event]) -> RunState:
    return fold(events, RunState(run=run, workspace=workspace))
