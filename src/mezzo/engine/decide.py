"""Decide what a run does next. Pure: a function of the folded state alone.

Any worker that folds the same events makes the same decision, so a run whose worker died is
picked up by another and carries on from the last step whose result is in the log.
"""

from __future__ import annotations

from dataclasses import dataclass

from mezzo.engine.state import RunState
from mezzo.protocol import ToolCallData


@dataclass(frozen=True, slots=True)
class Start:
    pass


@dataclass(frozen=True, slots=True)
class CallModel:
    step: int


@dataclass(frozen=True, slots=True)
class RunTool:
    call: ToolCallData


@dataclass(frozen=True, slots=True)
class Complete:
    output: str


@dataclass(frozen=True, slots=True)
class Fail:
    error: str


@dataclass(frozen=True, slots=True)
class Wait:
    """Nothing to do until something outside the worker happens (tool result, input, top-up)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Done:
    pass


Step = Start | CallModel | RunTool | Complete | Fail | Wait | Done


def decide(state: RunState) -> Step:
    if state.terminal:
        return Done()
    if state.status == "suspended":
        return Wait("suspended")
    if state.status == "queued":
        return Start()
    if state.pending_yield is not None:
        return Wait("awaiting_input")
    server_calls = state.pending_server_calls
    if server_calls:
        return RunTool(server_calls[0])
    if state.pending_client_calls:
        return Wait("awaiting_tool")
    if state.open_model_call is not None:
        return CallModel(state.open_model_call.step)
    last = state.transcript[-1] if state.transcript else None
    if last is not None and last.role == "assistant" and not last.tool_calls:
        return Complete(last.content)
    if state.steps >= state.max_steps:
        return Fail(f"the run reached max_steps={state.max_steps} without a final answer")
    return CallModel(state.steps + 1)
