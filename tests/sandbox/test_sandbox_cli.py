"""`mezzo sandbox exec` and `spawn-worker` through the real CLI entry point."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mezzo.cli import app
from mezzo.sandbox.worker import QUEUE, result_key
from mezzo.store.sqlite import SQLiteStore

runner = CliRunner()


def test_exec_passes_output_and_exit_code_through(tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_text("from the host")
    done = runner.invoke(app, [
        "sandbox", "exec", "--mount", f"{tmp_path}:/data", "-e", "GREETING=hi", "--",
        "sh", "-c", "echo $GREETING; cat /data/data.txt; echo oops >&2; exit 7",
    ])  # fmt: skip
    assert done.exit_code == 7
    assert done.stdout == "hi\nfrom the host"
    assert "oops" in done.stderr


def test_exec_time_limit_exits_124() -> None:
    done = runner.invoke(app, ["sandbox", "exec", "--max-execution-time=300ms", "--", "sleep", "9"])
    assert done.exit_code == 124
    assert "time limit" in done.stderr


def test_exec_json_result() -> None:
    done = runner.invoke(app, ["sandbox", "exec", "--json", "--", "python3", "-c", "print(2)"])
    assert done.exit_code == 0
    result = json.loads(done.stdout)
    assert result["stdout"] == "2\n" and result["exit_code"] == 0 and not result["timed_out"]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--sandbox", "debian:bookworm"], "unknown image"),
        (["--mount", "/no/such/dir:/app"], "does not exist"),
        (["--mount", ".:app"], "absolute"),
        (["--mount", ".:/app", "--mount", ".:/app/x"], "overlap"),
        (["--max-execution-time", "forever"], "malformed duration"),
        (["--max-execution-time", "0s"], "time_limit_s"),
        (["--memory", "1k"], "memory_limit_bytes"),
        (["--pids", "0"], "pid_limit"),
        (["--allow-net", "github.com,bad..name"], "malformed domain"),
        (["--env", "NOEQUALS"], "NAME=VALUE"),
    ],
)
def test_bad_flags_give_one_error_line(flags: list[str], message: str) -> None:
    done = runner.invoke(app, ["sandbox", "exec", *flags, "--", "true"])
    assert done.exit_code == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]


def test_spawn_worker_drains_the_queue(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'q.sqlite3'}"
    store = SQLiteStore(str(tmp_path / "q.sqlite3"))

    async def enqueue() -> None:
        await store.open()
        await store.enqueue(QUEUE, "j1", {"language": "python", "code": "print(sum(range(10)))"})
        await store.close()

    async def result() -> dict[str, object] | None:
        await store.open()
        try:
            return await store.kv_get(result_key("j1"))
        finally:
            await store.close()

    asyncio.run(enqueue())
    done = runner.invoke(app, [
        "sandbox", "spawn-worker", "--sandbox=host", "--mount", f"{tmp_path}:/app",
        "--max-execution-time=30s", "--allow-net=github.com", "--store", url, "--drain",
    ])  # fmt: skip
    assert done.exit_code == 0, done.stderr
    assert "after 1 job(s)" in done.stderr
    stored = asyncio.run(result())
    assert stored is not None and stored["status"] == "done"
    assert stored["result"]["stdout"] == "45\n"  # type: ignore[index]


def test_spawn_worker_rejects_bad_flags() -> None:
    done = runner.invoke(app, ["sandbox", "spawn-worker", "--allow-net=*", "--drain"])
    assert done.exit_code == 2 and "malformed domain" in done.stderr
