"""The agent-facing `run_code` tool in a real sandbox, and the text it hands the model."""

from __future__ import annotations

import pytest

from mezzo.sandbox.result import ExecResult
from mezzo.sandbox.runner import Sandbox
from mezzo.sandbox.spec import SandboxSpec, SpecError
from mezzo.sandbox.tool import render_result, run_code


async def test_python_code_runs_next_to_its_files(sandbox: Sandbox) -> None:
    code = "import json, os\nprint(json.load(open('data/in.json'))['n'] * 2, os.getcwd())"
    result = await run_code("python", code, {"data/in.json": '{"n": 21}'}, sandbox=sandbox)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "42 /workspace\n"


async def test_shell_code_and_its_exit_status(sandbox: Sandbox) -> None:
    result = await run_code("shell", "wc -l < notes.txt; exit 4", {"notes.txt": "a\nb\n"},
                            sandbox=sandbox)  # fmt: skip
    assert (result.stdout, result.exit_code) == ("2\n", 4)


async def test_tool_spec_limits_apply(sandbox: Sandbox) -> None:
    spec = SandboxSpec(time_limit_s=0.5)
    result = await run_code("python", "while True: pass", spec=spec, sandbox=sandbox)
    assert result.timed_out
    assert render_result(result).startswith("[timed out after")


@pytest.mark.parametrize("name", ["../escape.txt", "/etc/passwd", "a/../../b", "main.py", ""])
async def test_bad_file_names_are_refused(sandbox: Sandbox, name: str) -> None:
    with pytest.raises(SpecError):
        await run_code("python", "print(1)", {name: "x"}, sandbox=sandbox)


async def test_unknown_language_is_refused(sandbox: Sandbox) -> None:
    with pytest.raises(SpecError, match="language"):
        await run_code("ruby", "puts 1", sandbox=sandbox)  # type: ignore[arg-type]


def _result(stdout: str, stderr: str = "", **fields: object) -> ExecResult:
    base: dict[str, object] = {"exit_code": 0, "duration_s": 0.25}
    return ExecResult(stdout=stdout, stderr=stderr, **{**base, **fields})  # type: ignore[arg-type]


def test_render_keeps_everything_that_fits() -> None:
    text = render_result(_result("hello\n", "warn\n", exit_code=1))
    assert text == "[exit code 1; 0.25s]\n[stdout]\nhello\n[stderr]\nwarn"
    assert render_result(_result("")).endswith("(no output)")


def test_render_trims_to_the_cap_keeping_both_ends_and_some_stderr() -> None:
    long_out = "BEGIN" + "o" * 50_000 + "END"
    long_err = "ERRSTART" + "e" * 50_000 + "ERREND"
    text = render_result(_result(long_out, long_err, stdout_truncated=True), max_chars=2000)
    assert len(text) <= 2000
    for piece in ("BEGIN", "END", "ERRSTART", "ERREND", "characters trimmed", "middle elided"):
        assert piece in text
