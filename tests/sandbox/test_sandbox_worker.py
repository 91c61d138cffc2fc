"""spawn-worker against the real SQLite store: jobs in, sandboxed results out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mezzo.sandbox.runner import Sandbox
from mezzo.sandbox.spec import Mount, SandboxSpec
from mezzo.sandbox.worker import QUEUE, SandboxWorker, result_key
from mezzo.store.sqlite import SQLiteStore


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    opened = SQLiteStore(str(tmp_path / "mezzo.sqlite3"))
    await opened.open()
    yield opened
    await opened.close()


async def test_worker_runs_each_job_in_a_sandbox_and_stores_the_result(
    store: SQLiteStore, sandbox: Sandbox, tmp_path: Path
) -> None:
    app = tmp_path / "src"
    app.mkdir()
    (app / "lib.py").write_text("ANSWER = 42\n")
    spec = SandboxSpec(mounts=(Mount(source=app, target="/app"),), time_limit_s=5)
    await store.enqueue(QUEUE, "code-1", {
        "language": "python", "files": {"x.txt": "7"},
        "code": "import sys; sys.path.insert(0, '/app'); import lib\n"
                "print(lib.ANSWER * int(open('x.txt').read()))",
    })  # fmt: skip
    await store.enqueue(QUEUE, "cmd-1", {"command": "cat /app/lib.py; touch /app/nope"})
    await store.enqueue(QUEUE, "bad-1", {"language": "ruby", "code": "puts 1"})
    await store.enqueue(QUEUE, "loop-1", {"language": "shell", "code": "while :; do :; done"})
    worker = SandboxWorker(
        store, spec.model_copy(update={"time_limit_s": 1.0}), sandbox=sandbox, concurrency=2
    )
    await asyncio.wait_for(worker.serve(asyncio.Event(), drain=True), 30)

    code = await store.kv_get(result_key("code-1"))
    assert code is not None and code["status"] == "done"
    assert code["result"]["stdout"] == "294\n"
    command = await store.kv_get(result_key("cmd-1"))
    assert command is not None and command["result"]["stdout"] == "ANSWER = 42\n"
    assert "Read-only file system" in command["result"]["stderr"]
    bad = await store.kv_get(result_key("bad-1"))
    assert bad is not None and bad["status"] == "invalid" and "python" in bad["error"]
    loop = await store.kv_get(result_key("loop-1"))
    assert loop is not None and loop["result"]["timed_out"] is True
    assert worker.processed == 4
    assert await store.lease(QUEUE, "other", 10, 5) == []  # every job was acked


async def test_worker_refuses_to_start_where_it_cannot_confine(store: SQLiteStore) -> None:
    from mezzo.sandbox.limits import SandboxUnavailable

    await store.enqueue(QUEUE, "code-2", {"language": "shell", "code": "true"})
    with Sandbox(bwrap="/bin/false") as broken:
        worker = SandboxWorker(store, SandboxSpec(), sandbox=broken)
        with pytest.raises(SandboxUnavailable):
            await worker.serve(asyncio.Event(), drain=True)
    assert len(await store.lease(QUEUE, "other", 10, 5)) == 1  # the job was never taken


async def test_a_sandbox_that_cannot_start_is_retried_then_dead_lettered(
    store: SQLiteStore, sandbox: Sandbox
) -> None:
    await store.enqueue(QUEUE, "stuck-1", {"command": "true"}, max_attempts=1)
    worker = SandboxWorker(store, SandboxSpec(workdir="/no/such/dir"), sandbox=sandbox)
    await asyncio.wait_for(worker.serve(asyncio.Event(), drain=True), 30)
    assert await store.kv_get(result_key("stuck-1")) is None
    dead = await store.dead_letters(QUEUE)
    assert [job.id for job in dead] == ["stuck-1"]
    assert dead[0].last_error is not None and "Can't chdir" in dead[0].last_error
