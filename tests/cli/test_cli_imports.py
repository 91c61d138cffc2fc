"""`mezzo --help` and each subcommand import only what they need (mezzo.cli_lazy)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from core_support import ROOT
from mezzo.cli import app

# Loaded by one subcommand each; none of them by `mezzo --help`.
HEAVY = [
    "mezzo.config",
    "mezzo.service",
    "mezzo.server",
    "mezzo.engine",
    "mezzo.cli_admin",
    "mezzo.sandbox",
    "mezzo.threatscan",
    "mezzo.stub",
    "fastapi",
    "uvicorn",
    "httpx",
    "pydantic",
]


# Runs the CLI as the console script does and reports every module it imported, at exit.
REPORT = (
    "import atexit, json, sys\n"
    "atexit.register(lambda: print('MODULES ' + json.dumps(sorted(sys.modules)), file=sys.stderr))\n"
    "sys.argv = ['mezzo', *sys.argv[1:]]\n"
    "from mezzo.cli import app\n"
    "app()\n"
)


def imported_by(*args: str) -> set[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEZZO_", "OPENAI_"))}
    done = subprocess.run(
        [sys.executable, "-c", REPORT, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Usage:" in done.stdout
    report = [line for line in done.stderr.splitlines() if line.startswith("MODULES ")]
    return set(json.loads(report[-1].removeprefix("MODULES ")))


def loaded(imported: set[str], package: str) -> bool:
    return any(name == package or name.startswith(package + ".") for name in imported)


def test_help_imports_no_subcommand() -> None:
    imported = imported_by("--help")
    assert [name for name in HEAVY if loaded(imported, name)] == []


@pytest.mark.parametrize(
    ("subcommand", "own"),
    [
        ("stub-llm", "mezzo.stub"),
        ("scan", "mezzo.threatscan"),
        ("sandbox", "mezzo.sandbox"),
        ("admin", "mezzo.cli_admin"),
        ("doctor", "mezzo.cli_admin"),
    ],
)
def test_a_subcommand_imports_its_own_module_only(subcommand: str, own: str) -> None:
    imported = imported_by(subcommand, "--help")
    assert loaded(imported, own)
    others = [name for name in HEAVY if name.startswith("mezzo.") and name != own]
    if own == "mezzo.cli_admin":  # doctor and admin share it; neither runs the engine
        others.remove("mezzo.config")
    assert [name for name in others if loaded(imported, name)] == []


def test_help_lists_lazy_subcommands_with_their_help_line() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "Find chained attack paths" in result.stdout
    assert "An OpenAI-compatible stub LLM server" in result.stdout
    group = CliRunner().invoke(app, ["stub-llm", "--help"])
    assert group.exit_code == 0
    assert "An OpenAI-compatible stub LLM server" in group.stdout
    assert "--fail-429" in group.stdout


def test_an_unknown_subcommand_is_a_usage_error() -> None:
    result = CliRunner().invoke(app, ["no-such-command"])
    assert result.exit_code == 2
    assert "No such command" in result.output


def test_a_lazy_command_lists_its_own_docstring() -> None:
    """A command function's help line in the table is a copy of its docstring's first line:
    this keeps the two from drifting apart (a group's line is the group's help, as
    `add_typer(help=...)` gave it)."""
    import importlib
    import inspect

    from mezzo.cli import MezzoCommands

    for name, lazy in MezzoCommands.subcommands.items():
        module, _, attribute = lazy.target.partition(":")
        value = getattr(importlib.import_module(module), attribute)
        if inspect.isfunction(value):
            assert lazy.help == (inspect.getdoc(value) or "").split("\n\n")[0], name
