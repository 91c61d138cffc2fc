"""Folding and deciding are pure: the same events give the same state and the same next step."""

from __future__ import annotations

import time
from typing import Any

from mezzo.engine.decide import CallModel, Complete, Done, Fail, RunTool, Start, Wait, decide
from mezzo.engine.state import fold_new
from mezzo.protocol import Event

_seq = 0


def ev(type_: str, **data: Any) -> Event:
    global _seq
    _seq += 1
    return Event(seq=_seq, workspace="ws", run="r", type=type_, ts=time.time(), data=data)


def queued(max_steps: int = 5) -> Event:
    return ev("run_queued", input="do it", priority="normal", max_steps=max_steps)


def result(step: int, text: str = "", calls: list[dict[str, Any]] | None = None) -> Event:
    return ev(
        "model_result",
        step=step,
        model="m",
        text=text,
        tool_calls=calls or [],
        usage={"input_tokens": 10, "output_tokens": 2},
        reservation=f"r:{step}",
    )


def call(call_id: str, name: str = "t", side: str = "client") -> dict[str, Any]:
    return {"call_id": call_id, "name": name, "arguments": {"a": 1}, "side": side, "step": 1}


def test_a_new_run_starts_then_calls_the_model() -> None:
    state = fold_new("r", "ws", [queued()])
    assert (state.status, decide(state)) == ("queued", Start())
    state = fold_new("r", "ws", [queued(), ev("run_started")])
    assert decide(state) == CallModel(1)


def test_a_text_answer_completes_the_run() -> None:
    state = fold_new("r", "ws", [queued(), ev("run_started"), result(1, "the answer")])
    assert decide(state) == Complete("the answer")
    assert (state.input_tokens, state.output_tokens) == (10, 2)


def test_client_tool_call_waits_then_continues_after_the_result() -> None:
    events = [
        queued(),
        ev("run_started"),
        result(1, calls=[call("c1")]),
        ev("tool_call", **call("c1")),
    ]
    state = fold_new("r", "ws", events)
    assert state.status == "awaiting_tool"
    assert decide(state) == Wait("awaiting_tool")
    events.append(ev("tool_result", call_id="c1", name="t", output="42"))
    state = fold_new("r", "ws", events)
    assert state.status == "running"
    assert decide(state) == CallModel(2)
    assert state.transcript[-1].role == "tool" and state.transcript[-1].content == "42"


def test_server_tool_call_is_run_once_its_result_is_missing() -> None:
    server_call = call("c1", name="run_code", side="server")
    events = [
        queued(),
        ev("run_started"),
        result(1, calls=[server_call]),
        ev("tool_call", **server_call),
    ]
    step = decide(fold_new("r", "ws", events))
    assert isinstance(step, RunTool) and step.call.call_id == "c1"
    events.append(ev("tool_result", call_id="c1", name="run_code", output="ok"))
    assert decide(fold_new("r", "ws", events)) == CallModel(2)


def test_an_interrupted_model_call_is_repeated_with_the_same_step() -> None:
    events = [
        queued(),
        ev("run_started"),
        ev(
            "model_call",
            step=1,
            route="default",
            provider="openai",
            model="m",
            reservation="r:1",
            reserved_tokens=100,
            estimated_input_tokens=10,
            max_output_tokens=90,
        ),
    ]
    assert decide(fold_new("r", "ws", events)) == CallModel(1)


def test_yield_waits_for_input_and_input_resumes() -> None:
    events = [
        queued(),
        ev("run_started"),
        result(1, calls=[call("y1", "request_human_input", "server")]),
        ev("yield", call_id="y1", question="ok?"),
    ]
    state = fold_new("r", "ws", events)
    assert state.status == "awaiting_input" and decide(state) == Wait("awaiting_input")
    events += [
        ev("input", call_id="y1", text="yes"),
        ev("tool_result", call_id="y1", name="request_human_input", output="yes"),
    ]
    state = fold_new("r", "ws", events)
    assert state.status == "running" and decide(state) == CallModel(2)


def test_max_steps_fails_the_run() -> None:
    events = [
        queued(max_steps=1),
        ev("run_started"),
        result(1, calls=[call("c1")]),
        ev("tool_call", **call("c1")),
        ev("tool_result", call_id="c1", name="t", output="x"),
    ]
    step = decide(fold_new("r", "ws", events))
    assert isinstance(step, Fail) and "max_steps=1" in step.error


def test_cancelled_and_suspended_runs() -> None:
    assert decide(fold_new("r", "ws", [queued(), ev("cancelled", reason="stop")])) == Done()
    state = fold_new("r", "ws", [queued(), ev("run_started"), ev("suspended", reason="budget")])
    assert decide(state) == Wait("suspended")
    state = fold_new("r", "ws", [queued(), ev("run_started"), ev("suspended"), ev("resumed")])
    assert decide(state) == Start()


def test_events_after_the_end_change_nothing() -> None:
    state = fold_new("r", "ws", [queued(), ev("completed", output="x"), ev("run_started")])
    assert state.status == "completed" and state.output == "x"
