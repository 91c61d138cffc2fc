"""Memory and process-count limits for one run, with what this machine can actually enforce.

Measured on the development machine (root in a container, kernel 6.x, cgroup v1 with only
`hugetlb` on the v2 hierarchy):

- `RLIMIT_AS` is enforced for every process, root or not: a memory bomb gets `ENOMEM`.
- `RLIMIT_NPROC` is *not* enforced when the sandbox's user maps to host root (the kernel
  exempts `INIT_USER`), so a root caller needs a `pids` cgroup; `/sys/fs/cgroup/pids` (v1) or a
  delegated v2 cgroup with the `pids` controller both do. A non-root caller gets `RLIMIT_NPROC`,
  which the kernel counts per user namespace, so it binds the sandbox.

When neither works the run is refused (`SandboxUnavailable`), never run without a pid limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

CGROUP_V1_PIDS = Path("/sys/fs/cgroup/pids")
CGROUP_V2 = Path("/sys/fs/cgroup")


class SandboxUnavailable(RuntimeError):
    """This machine cannot confine a run as asked; nothing was run."""


@dataclass
class PidsCgroup:
    """One cgroup (v1 `pids` hierarchy or v2) holding one run's processes."""

    path: Path

    @classmethod
    def create(cls, parent: Path, pid_limit: int) -> PidsCgroup:
        path = parent / f"run-{uuid.uuid4().hex[:16]}"
        path.mkdir()
        (path / "pids.max").write_text(str(pid_limit))
        return cls(path)

    def procs_file(self) -> str:
        return str(self.path / "cgroup.procs")

    def try_remove(self) -> bool:
        """SIGKILL whatever is left in the cgroup and remove it; False while it is still busy."""
        kill_file = self.path / "cgroup.kill"
        with contextlib.suppress(OSError):
            if kill_file.exists():
                kill_file.write_text("1")
        with contextlib.suppress(OSError):
            for line in (self.path / "cgroup.procs").read_text().split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(line), signal.SIGKILL)
        try:
            self.path.rmdir()
        except FileNotFoundError:
            return True
        except OSError:
            return False
        return True

    def kill_and_remove(self, within_s: float = 2.0) -> None:
        deadline = time.monotonic() + within_s
        while not self.try_remove() and time.monotonic() < deadline:
            time.sleep(0.005)

    async def kill_and_remove_async(self, within_s: float = 2.0) -> None:
        """The same, without blocking: right after bwrap exits, the pid namespace's last
        processes are often still being torn down, so the first rmdir fails."""
        try:
            for _ in range(int(within_s / 0.005)):
                if self.try_remove():
                    return
                await asyncio.sleep(0.005)
        except asyncio.CancelledError:  # the event loop is closing: finish the job now
            self.kill_and_remove(within_s)
            raise
        self.kill_and_remove(within_s)


@dataclass(frozen=True)
class PidLimiter:
    """How pid limits are enforced here: `cgroup` under `parent`, or `rlimit`."""

    kind: str
    parent: Path | None = None

    def describe(self) -> str:
        return f"{self.kind} ({self.parent})" if self.parent else self.kind


def _writable_cgroup_parent(root: Path) -> Path | None:
    parent = root / "mezzo"
    try:
        parent.mkdir(exist_ok=True)
        probe = PidsCgroup.create(parent, 1)
    except OSError:
        return None
    probe.kill_and_remove()
    sweep_stale(parent)
    return parent


def sweep_stale(parent: Path, older_than_s: float = 600.0) -> int:
    """Remove empty run cgroups left by processes that died before cleaning up (kill -9).
    Only old ones: a young empty cgroup may belong to a run that is just starting."""
    removed = 0
    cutoff = time.time() - older_than_s
    for path in parent.glob("run-*"):
        with contextlib.suppress(OSError):
            if path.stat().st_mtime < cutoff and not (path / "cgroup.procs").read_text().strip():
                path.rmdir()
                removed += 1
    return removed


def _own_v2_cgroup() -> Path | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                return CGROUP_V2 / line[3:].lstrip("/")
    return None


def detect_pid_limiter() -> PidLimiter:
    if os.geteuid() != 0:
        return PidLimiter("rlimit")
    if (CGROUP_V1_PIDS / "cgroup.procs").exists():
        parent = _writable_cgroup_parent(CGROUP_V1_PIDS)
        if parent:
            return PidLimiter("cgroup-v1", parent)
    own = _own_v2_cgroup()
    controllers = own / "cgroup.controllers" if own else None
    if own and controllers and controllers.exists() and "pids" in controllers.read_text().split():
        parent = _writable_cgroup_parent(own)
        if parent:
            return PidLimiter("cgroup-v2", parent)
    raise SandboxUnavailable(
        "cannot enforce a pid limit: running as root without a writable pids cgroup "
        "(v1 /sys/fs/cgroup/pids or a delegated v2 cgroup); refusing to run unconfined"
    )


def confine(
    child_pid: int, memory_limit_bytes: int, pid_limit: int, cgroup: PidsCgroup | None
) -> None:
    """Put the sandbox's first process (still blocked inside bwrap, before it runs anything)
    into the run's cgroup and give it the rlimits that every later process inherits.

    Done from outside while bwrap sets up, rather than by a trampoline before bwrap: moving a
    process between cgroup v1 groups waits for an RCU grace period (several ms), and here that
    wait overlaps bwrap's own setup instead of adding to it.
    """
    resource.prlimit(child_pid, resource.RLIMIT_AS, (memory_limit_bytes, memory_limit_bytes))
    resource.prlimit(child_pid, resource.RLIMIT_CORE, (0, 0))
    if cgroup is None:
        resource.prlimit(child_pid, resource.RLIMIT_NPROC, (pid_limit, pid_limit))
    else:
        with open(cgroup.procs_file(), "w") as procs:
            procs.write(str(child_pid))
