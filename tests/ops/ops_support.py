"""Helpers for the operations tests: a server-side tool loop of N steps and store sizes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from mezzo.protocol import CreateWorkspace, SubmitRun, ToolDecl
from mezzo.service import Mezzo
from mezzo.tools.registry import ToolRegistry


def tick() -> str:
    """Return the same short answer every time."""
    return "tock"


def tick_tools() -> ToolRegistry:
    tools = ToolRegistry()
    tools.register(tick)
    return tools


def loop_task(steps: int) -> str:
    """A task the stub answers with `steps - 1` calls of `tick`, then text: `steps` model calls."""
    return "loop\n" + "\n".join("/call tick {}" for _ in range(steps - 1))


async def tick_workspace(mezzo: Mezzo, workspace: str) -> None:
    await mezzo.create_workspace(
        "local",
        CreateWorkspace(
            id=workspace,
            budget_tokens=10**12,
            max_steps=10_000,
            tools=[ToolDecl(name="tick", side="server")],
        ),
    )


async def run_loop(mezzo: Mezzo, workspace: str, steps: int) -> str:
    """Submit a `steps`-step tool loop and wait for it to complete; returns the run id."""
    accepted, _ = await mezzo.submit_run("local", workspace, SubmitRun(input=loop_task(steps)))
    key = (await mezzo.workspace_record("local", workspace)).id
    async for event in mezzo.store.tail(
        key, accepted.seq, ["completed", "failed"], run=accepted.run
    ):
        assert event.type == "completed", event
        return accepted.run
    raise AssertionError("unreachable")


def sqlite_bytes(path: Path) -> int:
    """Bytes the SQLite store's pages take once its WAL is checkpointed (free pages excluded)."""
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
    return int((pages - free) * size)
