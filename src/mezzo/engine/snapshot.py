"""Snapshots of a run's folded state in the store's KV, so loading a long run folds only the
events after the last snapshot instead of its whole history.

A snapshot is `{"format", "workspace", "state"}` under `snapshot/{run}`. It is a cache: any
snapshot, however old, plus the run's events after its `last_seq` folds to the same state as
the whole log, so concurrent writers may overwrite each other's snapshots harmlessly.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

from mezzo import keys
from mezzo.engine.state import RunState, fold, fold_new
from mezzo.protocol import ModelCallData, ModelResultData, ToolCallData, YieldData
from mezzo.providers.base import Message, ToolCall
from mezzo.store.base import Store

SNAPSHOT_FORMAT = 1
READ_BATCH = 1000


def snapshot_key(run: str) -> str:
    return keys.snapshot(run)


def dump_state(state: RunState) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(state):
        value = getattr(state, f.name)
        if f.name == "transcript":
            value = [asdict(message) for message in value]
        elif f.name == "pending_calls":
            value = {k: call.model_dump(mode="json") for k, call in value.items()}
        elif hasattr(value, "model_dump"):
            value = value.model_dump(mode="json")
        out[f.name] = value
    return out


def restore_state(data: dict[str, Any]) -> RunState:
    values = dict(data)
    values["transcript"] = [
        Message(
            role=m["role"],
            content=m["content"],
            tool_calls=tuple(ToolCall(**c) for c in m["tool_calls"]),
            call_id=m["call_id"],
        )
        for m in data["transcript"]
    ]
    values["pending_calls"] = {
        k: ToolCallData.model_validate(v) for k, v in data["pending_calls"].items()
    }
    for name, model in (
        ("open_model_call", ModelCallData),
        ("last_result", ModelResultData),
        ("pending_yield", YieldData),
    ):
        if data[name] is not None:
            values[name] = model.model_validate(data[name])
    return RunState(**values)


async def read_snapshot(store: Store, workspace: str, run: str) -> RunState | None:
    value = await store.kv_get(snapshot_key(run))
    if (
        value is None
        or value.get("format") != SNAPSHOT_FORMAT
        or value.get("workspace") != workspace
    ):
        return None
    try:
        return restore_state(value["state"])
    except (KeyError, TypeError, ValueError):
        return None  # an unreadable snapshot costs a full fold, never a wrong state


async def write_snapshot(store: Store, state: RunState) -> None:
    await store.kv_put(
        snapshot_key(state.run),
        {"format": SNAPSHOT_FORMAT, "workspace": state.workspace, "state": dump_state(state)},
    )


async def load_run(store: Store, workspace: str, run: str, every: int) -> RunState:
    """The run's folded state: the last snapshot (when `every` > 0) plus the events after it.
    Writes a new snapshot when `every` or more events were folded on top of the old one."""
    state = await read_snapshot(store, workspace, run) if every > 0 else None
    if state is None:
        state = fold_new(run, workspace, [])
    base_version = state.version
    after = state.last_seq
    while True:
        batch = await store.read(workspace, after, None, READ_BATCH, run)
        fold(batch, state)
        if len(batch) < READ_BATCH:
            break
        after = batch[-1].seq or after
    if every > 0 and state.version - base_version >= every:
        await write_snapshot(store, state)
    return state


async def snapshot_if_due(store: Store, state: RunState, before_version: int, every: int) -> None:
    """Snapshot when an append carried the run's version across a multiple of `every`."""
    if every > 0 and state.version // every > before_version // every:
        await write_snapshot(store, state)
