"""Orchestration overhead per agent step: the same tool loop through mezzo and straight to the stub.

A run of STEPS model calls, each answered by a trivial server-side tool, goes through mezzo
embedded in this process (SQLite store, worker pool, governor, event log). The same loop is
then written by hand against the stub with mezzo's own provider (no store, no governor). The
difference, divided by the number of model calls, is mezzo's overhead per step.

    .venv/bin/python bench/step_overhead_bench.py [--runs 20] [--steps 10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from core_support import core_settings, free_port  # noqa: E402
from mezzo import keys  # noqa: E402
from mezzo.logs import configure_logging  # noqa: E402
from mezzo.protocol import CreateWorkspace, SubmitRun, ToolDecl  # noqa: E402
from mezzo.providers.base import Message, ModelRequest, ModelResponse, ToolSpec  # noqa: E402
from mezzo.providers.openai import OpenAIProvider  # noqa: E402
from mezzo.service import Mezzo  # noqa: E402
from mezzo.tools.builtin import HUMAN_INPUT_TOOL  # noqa: E402
from mezzo.tools.registry import ToolRegistry  # noqa: E402


class _StubProcess:
    def __init__(self, port: int) -> None:
        self.base_url = f"http://127.0.0.1:{port}/v1"


@contextlib.contextmanager
def stub_process() -> Iterator[_StubProcess]:
    """The stub in its own process, as a real upstream would be: no shared GIL with mezzo."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mezzo.cli", "stub-llm", "--port", str(port)])
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1, trust_env=False)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield _StubProcess(port)
    finally:
        proc.terminate()
        proc.wait(10)


def noop() -> str:
    """Do nothing."""
    return "ok"


def task(steps: int) -> str:
    return "loop\n" + "\n".join("/call noop {}" for _ in range(steps - 1))


async def direct_loop(provider: OpenAIProvider, steps: int) -> float:
    tools = (
        ToolSpec("noop", "Do nothing.", {"type": "object", "properties": {}}),
        ToolSpec(HUMAN_INPUT_TOOL.name, HUMAN_INPUT_TOOL.description, HUMAN_INPUT_TOOL.parameters),
    )
    messages = [Message("user", task(steps))]
    started = time.perf_counter()
    while True:
        response: ModelResponse | None = None
        async for chunk in provider.stream(
            ModelRequest("stub-model", tuple(messages), tools, 4096)
        ):
            if isinstance(chunk, ModelResponse):
                response = chunk
        assert response is not None
        messages.append(Message("assistant", response.text, response.tool_calls))
        if not response.tool_calls:
            return time.perf_counter() - started
        for call in response.tool_calls:
            messages.append(Message("tool", noop(), call_id=call.call_id))


async def mezzo_loop(mezzo: Mezzo, workspace: str, steps: int) -> float:
    started = time.perf_counter()
    accepted, _ = await mezzo.submit_run("local", workspace, SubmitRun(input=task(steps)))
    async for event in mezzo.store.tail(
        keys.workspace_key("local", workspace),
        accepted.seq,
        ["completed", "failed"],
        run=accepted.run,
    ):
        assert event.type == "completed", event
        return time.perf_counter() - started
    raise AssertionError("unreachable")


async def main(runs: int, steps: int, sync: str) -> None:
    configure_logging("warning", "console")
    with tempfile.TemporaryDirectory() as tmp, stub_process() as stub:
        tools = ToolRegistry()
        tools.register(noop)
        mezzo = Mezzo(core_settings(Path(tmp), stub, sqlite_synchronous=sync), tools=tools)
        await mezzo.start()
        provider = OpenAIProvider("chat", base_url=stub.base_url, api_key="bench")
        try:
            await mezzo.create_workspace(
                "local",
                CreateWorkspace(
                    id="bench", budget_tokens=10**12, tools=[ToolDecl(name="noop", side="server")]
                ),
            )
            await direct_loop(provider, steps)
            await mezzo_loop(mezzo, "bench", steps)
            direct, through, direct_cpu, through_cpu = [], [], [], []
            for _ in range(runs):
                cpu = time.process_time()
                direct.append(await direct_loop(provider, steps))
                direct_cpu.append(time.process_time() - cpu)
                cpu = time.process_time()
                through.append(await mezzo_loop(mezzo, "bench", steps))
                through_cpu.append(time.process_time() - cpu)
        finally:
            await provider.aclose()
            await mezzo.stop()
    per_step = sorted((m - d) / steps * 1000 for m, d in zip(through, direct, strict=True))
    print(f"runs={runs} model calls per run={steps} (each followed by a server-side tool step)")
    print(f"direct loop     p50 {statistics.median(direct) * 1000:7.1f} ms per run")
    print(f"through mezzo   p50 {statistics.median(through) * 1000:7.1f} ms per run")
    print(
        f"overhead per model step: p50 {statistics.median(per_step):.2f} ms, max {per_step[-1]:.2f} ms"
    )
    print(
        f"mezzo / direct time ratio: {statistics.median(through) / statistics.median(direct):.2f}"
    )
    cpu_per_step = (statistics.median(through_cpu) - statistics.median(direct_cpu)) / steps * 1000
    print(
        f"CPU of this process per model step: direct {statistics.median(direct_cpu) / steps * 1000:.2f} ms, "
        f"through mezzo {statistics.median(through_cpu) / steps * 1000:.2f} ms "
        f"(+{cpu_per_step:.2f} ms; all threads, the stub not included)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--sqlite-synchronous", default="FULL", choices=["FULL", "NORMAL"])
    arguments = parser.parse_args()
    asyncio.run(main(arguments.runs, arguments.steps, arguments.sqlite_synchronous))
