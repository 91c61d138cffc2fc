"""`AgentWorkspace`: the Python SDK.

    workspace = await AgentWorkspace.create(id="review", budget_tokens=500_000,
                                            fallback_behavior="suspend", tools=[lookup_schema])
    await workspace.submit("Review the architecture of ...")
    async for event in workspace.subscribe(events=["tool_call", "yield", "budget_alert"]):
        ...

With `MEZZO_URL` set (or `url=`) it talks to that server; otherwise it runs the engine embedded
in this process.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from mezzo.client.events import AgentEvent
from mezzo.client.http import HttpTransport
from mezzo.client.transport import Transport
from mezzo.files.models import FileInfo
from mezzo.protocol import (
    CreateWorkspace,
    RunAccepted,
    RunView,
    SubmitRun,
    ToolResultIn,
    ToolResultsIn,
    Workspace,
    parse_types,
)
from mezzo.tools.registry import ToolLike, tool_decl


async def connect(url: str | None = None, api_key: str | None = None) -> Transport:
    url = url or os.environ.get("MEZZO_URL")
    if url:
        return HttpTransport(url, api_key or os.environ.get("MEZZO_API_KEY"))
    # The engine, the store and the governor: imported only by a program that runs them here.
    from mezzo.client.embedded import EmbeddedTransport, shared_mezzo

    return EmbeddedTransport(await shared_mezzo())


class AgentWorkspace:
    def __init__(self, transport: Transport, info: Workspace) -> None:
        self.transport = transport
        self.info = info
        self.id = info.id
        self.last_run: str | None = None
        self._cursor = info.head_seq
        self._call_runs: dict[str, str] = {}

    @classmethod
    async def create(
        cls,
        id: str | None = None,
        *,
        budget_tokens: int = 1_000_000,
        fallback_behavior: str = "suspend",
        tools: Sequence[ToolLike] = (),
        url: str | None = None,
        api_key: str | None = None,
        **config: Any,
    ) -> AgentWorkspace:
        """Create the workspace, or open it when one with this id and configuration exists.

        `tools`: client-side tools (the run pauses with a `tool_call` event until you submit
        the result) as typed Python functions, as dicts written for OpenAI's Responses API
        (`{"type": "function", "name": ..., "parameters": {...}}`) or Chat Completions API
        (`{"type": "function", "function": {...}}`), or `ToolDecl`s; and names of server-side
        tools.
        """
        body = CreateWorkspace(
            id=id,
            budget_tokens=budget_tokens,
            fallback_behavior=fallback_behavior,
            tools=[tool_decl(tool, f"tools[{i}]") for i, tool in enumerate(tools)],
            **config,
        )
        transport = await connect(url, api_key)
        return cls(transport, await transport.create_workspace(body))

    @classmethod
    async def open(
        cls, id: str, *, url: str | None = None, api_key: str | None = None
    ) -> AgentWorkspace:
        transport = await connect(url, api_key)
        return cls(transport, await transport.get_workspace(id))

    async def submit(
        self,
        input: str,
        *,
        priority: str | None = None,
        max_steps: int | None = None,
        idempotency_key: str | None = None,
    ) -> RunAccepted:
        """Queue a run; returns at once (the server answers 202)."""
        body = SubmitRun(input=input, priority=priority, max_steps=max_steps)
        accepted = await self.transport.submit(self.id, body, idempotency_key)
        self.last_run = accepted.run
        return accepted

    async def subscribe(
        self, events: Sequence[str] | None = None, *, after: int | None = None
    ) -> AsyncIterator[AgentEvent]:
        """This workspace's events since it was opened (or after `after`), then live ones."""
        types = parse_types(list(events)) if events is not None else None
        wanted = set(types) if types else None
        # Tool calls are always watched so that submit_tool_result knows their run.
        asked = sorted((wanted | {"tool_call", "yield"}) if wanted else []) or None
        start = self._cursor if after is None else after
        async for raw in self.transport.subscribe(self.id, start, asked):
            if raw.seq is not None:
                self._cursor = max(self._cursor, raw.seq)
            if raw.type in ("tool_call", "yield") and raw.run is not None:
                self._call_runs[raw.data["call_id"]] = raw.run
            if wanted is None or raw.type in wanted:
                yield AgentEvent.from_event(raw)

    async def submit_tool_result(
        self, call_id: str, output: Any, *, is_error: bool = False, run: str | None = None
    ) -> RunView:
        """Answer a client-side `tool_call`; the run continues."""
        run = run or self._call_runs.get(call_id) or self.last_run
        if run is None:
            raise ValueError(f"unknown call {call_id!r}: pass run=")
        text = output if isinstance(output, str) else json.dumps(output, default=str)
        body = ToolResultsIn(
            results=[ToolResultIn(call_id=call_id, output=text, is_error=is_error)]
        )
        return await self.transport.tool_results(run, body)

    async def answer(self, text: str, *, run: str | None = None) -> RunView:
        """Answer a `yield` (the agent asked a human)."""
        run = run or self.last_run
        if run is None:
            raise ValueError("no run to answer: pass run=")
        return await self.transport.input(run, text)

    async def attach(self, path: str | Path) -> FileInfo:
        """Upload a file by reference: it is streamed, recognised, summarised and indexed; the
        agent sees the summary and reads it through file tools, never as raw tokens."""
        return await self.transport.attach(self.id, Path(path))

    async def throttle(self, rate: float) -> Workspace:
        """Scale this workspace's share of the provider's token rate by `rate` in (0, 1]."""
        self.info = await self.transport.throttle(self.id, rate)
        return self.info

    async def add_budget(self, tokens: int) -> Workspace:
        """Top up the token budget; suspended runs resume."""
        self.info = await self.transport.add_budget(self.id, tokens)
        return self.info

    async def cancel(self, run: str | None = None, reason: str = "cancelled by client") -> RunView:
        run = run or self.last_run
        if run is None:
            raise ValueError("no run to cancel: pass run=")
        return await self.transport.cancel(run, reason)

    async def run_status(self, run: str | None = None) -> RunView:
        run = run or self.last_run
        if run is None:
            raise ValueError("no run: pass run=")
        return await self.transport.get_run(run)

    async def refresh(self) -> Workspace:
        self.info = await self.transport.get_workspace(self.id)
        return self.info

    async def close(self) -> None:
        await self.transport.aclose()
