"""Memory is limited for the sandbox's whole process tree (the memory cgroup), not per
process; and a symlink a run plants in a `:rw` mount is never followed by host code later."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mezzo.sandbox.limits import detect_memory_limiter
from mezzo.sandbox.runner import Sandbox, SandboxSetupError
from mezzo.sandbox.spec import MiB, Mount, SandboxSpec

MANY_PROCESSES = """
import os, sys, time
children = []
for i in range(8):
    pid = os.fork()
    if pid == 0:
        block = bytearray(100 << 20)
        for j in range(0, len(block), 4096):
            block[j] = 1
        time.sleep(3)
        os._exit(0)
    children.append(pid)
codes = [os.waitpid(pid, 0)[1] for pid in children]
print("statuses", codes)
sys.exit(0 if all(code == 0 for code in codes) else 3)
"""


def test_this_machine_limits_memory_with_a_cgroup() -> None:
    if os.geteuid() != 0:
        pytest.skip("an unprivileged caller without a delegated cgroup falls back to RLIMIT_AS")
    assert detect_memory_limiter().kind in ("cgroup-v1", "cgroup-v2")


async def test_many_processes_cannot_together_exceed_the_memory_limit(sandbox: Sandbox) -> None:
    spec = SandboxSpec(memory_limit_bytes=256 * MiB, time_limit_s=60)
    result = await sandbox.run(["python3", "-c", MANY_PROCESSES], spec)
    # 8 x 100 MiB resident: each process is far below its own RLIMIT_AS, the tree is not
    assert result.exit_code != 0 or result.signal is not None, result
    assert result.memory_limited, result


async def test_a_symlink_planted_in_a_rw_mount_is_not_followed_by_a_later_run(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    (shared / "reports").mkdir(parents=True)
    (shared / "reports" / "r.txt").write_text("report")
    spec = SandboxSpec(
        mounts=(
            Mount(source=shared, target="/work", writable=True),
            Mount(source=shared / "reports", target="/reports"),
        )
    )
    first = await sandbox.run(
        "cat /reports/r.txt; rm -rf /work/reports; ln -s / /work/reports", spec
    )
    assert first.stdout == "report" and first.exit_code == 0, first
    assert (shared / "reports").is_symlink()  # what the run left on the host
    with pytest.raises(SandboxSetupError, match="symlink"):
        await sandbox.run("ls /reports", spec)
