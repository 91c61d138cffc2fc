"""The embedded SDK is a library: it prints nothing into the program that uses it, and its logs
are standard `logging` records the program may choose to show."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from core_support import ROOT
from mezzo.stub.server import StubServer

PROGRAM = """
import asyncio, logging, sys

if sys.argv[1] == "debug":
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="%(name)s %(message)s")

from mezzo import AgentEvent, AgentWorkspace
from mezzo.client import shutdown
from mezzo.logs import get_logger


def lookup(table: str) -> str:
    \"\"\"Look a table up.\"\"\"
    return table


async def main() -> None:
    workspace = await AgentWorkspace.create(id="quiet", tools=[lookup])
    await workspace.submit('go\\n/call lookup {"table": "t"}')
    async for event in workspace.subscribe(events=["tool_call", "completed", "failed"]):
        if type(event) is AgentEvent.ToolCall:
            await workspace.submit_tool_result(event.call_id, "found it")
        else:
            print("OUTPUT:", event.data.get("output") or event.data)
            break
    # A warning from mezzo, as a lost lease would log: silent unless the program shows logs.
    get_logger("mezzo.worker").warning("lease lost", job="j1")
    await shutdown()


asyncio.run(main())
"""


def run_program(tmp_path: Path, stub: StubServer, mode: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "program.py"
    script.write_text(PROGRAM)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEZZO_", "OPENAI_"))}
    env.update(
        {
            "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")]),
            "MEZZO_DATA_DIR": str(tmp_path / "data"),
            "MEZZO_ROUTES": '{"default": {"primary": "openai:stub-model"}}',
            "OPENAI_BASE_URL": stub.base_url,
            "OPENAI_API_KEY": "test",
        }
    )
    return subprocess.run(
        [sys.executable, str(script), mode],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )


def test_an_embedded_run_prints_nothing_of_its_own(tmp_path: Path, stub: StubServer) -> None:
    done = run_program(tmp_path, stub, "quiet")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "OUTPUT: echo: found it\n"
    assert done.stderr == ""


def test_its_logs_are_logging_records_the_program_can_show(
    tmp_path: Path, stub: StubServer
) -> None:
    done = run_program(tmp_path, stub, "debug")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "OUTPUT: echo: found it\n"
    records = done.stderr.splitlines()
    assert any(line.startswith("mezzo.worker job done") for line in records), done.stderr
    assert "mezzo.worker lease lost" in records


def test_every_module_logs_through_mezzo_logs() -> None:
    """structlog's own default prints to stdout: a module that asks structlog for a logger
    would print into an embedding program."""
    src = ROOT / "src" / "mezzo"
    direct = {
        str(path.relative_to(src))
        for path in src.rglob("*.py")
        if "structlog.get_logger(" in path.read_text() and path.name != "logs.py"
    }
    assert direct == set(), sorted(direct)
