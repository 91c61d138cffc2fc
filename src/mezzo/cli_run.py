"""`mezzo run "task"`: submit a task and show its events live."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from mezzo.client import AgentEvent, AgentWorkspace, shutdown
from mezzo.errors import MezzoError

FINAL = ("completed", "failed", "cancelled")


async def run_task(
    task: str,
    workspace_id: str | None,
    budget: int,
    url: str | None,
    api_key: str | None,
    json_out: bool,
    ask: bool = False,
    attach: Sequence[Path] = (),
) -> int:
    out = Console()
    err = Console(stderr=True)
    try:
        workspace = await AgentWorkspace.create(
            id=workspace_id or f"cli_{uuid.uuid4().hex[:10]}",
            budget_tokens=budget,
            human_input=ask,
            url=url,
            api_key=api_key,
        )
        for path in attach:
            info = await workspace.attach(path)
            if not json_out:
                err.print(
                    f"[dim]attached {info.name} ({info.format.value}, {info.size} bytes) as {info.id}[/]"
                )
        accepted = await workspace.submit(task)
        if not json_out:
            err.print(f"[dim]run {accepted.run} in workspace {workspace.id} (queued)[/]")
        code = await _follow(workspace, accepted.run, out, err, json_out)
        await workspace.close()
        return code
    except MezzoError as exc:
        err.print(f"[bold red]error:[/] {escape(exc.message)}")
        return 2
    finally:
        await shutdown()


async def _follow(
    workspace: AgentWorkspace, run: str, out: Console, err: Console, json_out: bool
) -> int:
    used = 0
    streaming = False
    async for event in workspace.subscribe(after=max(0, workspace.info.head_seq)):
        if event.run not in (run, None):
            continue
        if json_out:
            sys.stdout.write(event.raw.model_dump_json() + "\n")
            sys.stdout.flush()
        match event:
            case AgentEvent.Delta():
                if not json_out:
                    out.print(escape(event.data.get("text", "")), end="", soft_wrap=True)
                    streaming = True
                continue
            case AgentEvent.ModelCall() if not json_out:
                err.print(
                    f"[dim]→ {event.data['provider']}:{event.data['model']} (step {event.data['step']}, reserved {event.data['reserved_tokens']} tokens)[/]"
                )
            case AgentEvent.ModelResult():
                usage = event.data["usage"]
                used += usage["input_tokens"] + usage["output_tokens"]
                if not json_out:
                    if streaming:
                        out.print()
                        streaming = False
                    elif event.data.get("text"):
                        out.print(escape(event.data["text"]))
                    budget = workspace.info.budget.budget_tokens
                    err.print(
                        f"[dim]  tokens: {usage['input_tokens']} in, {usage['output_tokens']} out — {used}/{budget} used[/]"
                    )
            case AgentEvent.ToolCall() if not json_out:
                err.print(f"[cyan]tool[/] {event.tool.name}({escape(str(event.tool.args))})")
            case AgentEvent.ToolResult() if not json_out:
                err.print(f"[cyan]  ⇒[/] {escape(event.data['output'][:400])}")
            case AgentEvent.Yield():
                if not sys.stdin.isatty():
                    err.print(
                        f"[yellow]the agent asks:[/] {escape(event.question)} (no terminal to answer; run {run} waits)"
                    )
                    return 3
                answer = err.input(f"[yellow]the agent asks:[/] {escape(event.question)}\n> ")
                await workspace.answer(answer, run=run)
            case AgentEvent.BudgetAlert() if not json_out:
                err.print(f"[yellow]budget alert:[/] {event.used}/{event.budget} tokens used")
            case AgentEvent.Suspended():
                err.print(
                    f"[yellow]suspended:[/] {event.data.get('reason')}; add budget to resume (run {run})"
                )
                return 4
            case AgentEvent.Routed() if not json_out:
                err.print(
                    f"[magenta]routed[/] to {event.data['to_route']}: {event.data.get('detail') or event.data['reason']}"
                )
            case AgentEvent.Retry() | AgentEvent.RateLimited() if not json_out:
                err.print(f"[yellow]{event.type}[/] {escape(str(event.data))}")
            case _:
                pass
        if event.type in FINAL and event.run == run:
            if event.type == "completed":
                if not json_out:
                    err.print("[green]completed[/]")
                return 0
            if not json_out:
                err.print(
                    f"[bold red]{event.type}:[/] {escape(str(event.data.get('error') or event.data.get('reason')))}"
                )
            return 1
    return 1
