"""Memory and process-count limits for one run, with what this machine can actually enforce.

Measured on the development machine (root in a container, kernel 6.x, cgroup v1 with only
`hugetlb` on the v2 hierarchy):

- `RLIMIT_AS` is enforced for every process, root or not: a memory bomb gets `ENOMEM`.
- `RLIMIT_NPROC` is *not* enforced when the sandbox's user maps to host root (the kernel
  exempts `INIT_USER`), so a root caller needs a `pids` cgroup; `/sys/fs/cgroup/pids` (v1) or a
  delegated v2 cgroup with the `pids` controller both do. A non-root caller gets `RLIMIT_NPROC`,
  which the kernel counts per user namespace, so it binds the sandbox.

When neither works the run is refused (`SandboxUnavailable`), never run without a pid limit.

Memory: `RLIMIT_AS` bounds each process, so N processes could use N times the limit. Where a
memory cgroup can be made (root with the v1 `memory` hierarchy, or a delegated v2 cgroup with
the `memory` controller), the run's whole process tree, its /tmp and /dev/shm (tmpfs pages are
charged to it) are held to `memory_limit_bytes` together, swap included; going over makes the
kernel's OOM killer end processes of that run only (`ExecResult.memory_limited`). Elsewhere
the limit stays per process (see docs/sandbox.md for what then holds).
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
CGROUP_V1_MEMORY = Path("/sys/fs/cgroup/memory")
CGROUP_V2 = Path("/sys/fs/cgroup")


class SandboxUnavailable(RuntimeError):
    """This machine cannot confine a run as asked; nothing was run."""


@dataclass
class PidsCgroup:
    """One cgroup (v1 `pids` hierarchy or v2) holding one run's processes."""

    path: Path

    @classmethod
    def create(cls, parent: Path, pid_limit: int) -> PidsCgroup:
        return cls.create_with(parent, {"pids.max": str(pid_limit)})

    @classmethod
    def create_with(cls, parent: Path, settings: dict[str, str]) -> PidsCgroup:
        """A new run cgroup under `parent` with these control files written (a file whose
        name ends in `?` is optional: written where the kernel has it)."""
        path = parent / f"run-{uuid.uuid4().hex[:16]}"
        path.mkdir()
        try:
            for name, value in settings.items():
                target = path / name.rstrip("?")
                if name.endswith("?") and not target.exists():
                    continue
                target.write_text(value)
        except OSError:
            path.rmdir()
            raise
        return cls(path)

    def oom_kills(self) -> int:
        """Processes the OOM killer ended in this cgroup (v2 `memory.events`, v1
        `memory.oom_control`); 0 for a cgroup without the memory controller."""
        for name in ("memory.events", "memory.oom_control"):
            with contextlib.suppress(OSError):
                for line in (self.path / name).read_text().splitlines():
                    key, _, value = line.partition(" ")
                    if key == "oom_kill" and value.strip().isdigit():
                        return int(value)
        return 0

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


def _writable_cgroup_parent(
    root: Path, probe_settings: dict[str, str] | None = None
) -> Path | None:
    parent = root / "mezzo"
    try:
        parent.mkdir(exist_ok=True)
        probe = PidsCgroup.create_with(parent, probe_settings or {"pids.max": "1"})
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


def _own_v1_cgroup(controller: str, root: Path) -> Path | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if controller in controllers.split(","):
                return root / path.lstrip("/")
    return None


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


@dataclass(frozen=True)
class MemoryLimiter:
    """How the memory limit holds here: for the whole run (`cgroup-v1`/`cgroup-v2` under
    `parent`) or per process only (`rlimit`)."""

    kind: str
    parent: Path | None = None

    def settings(self, memory_limit_bytes: int) -> dict[str, str]:
        limit = str(memory_limit_bytes)
        if self.kind == "cgroup-v2":
            return {"memory.max": limit, "memory.swap.max?": "0"}
        if self.kind == "cgroup-v1":
            return {"memory.limit_in_bytes": limit, "memory.memsw.limit_in_bytes?": limit}
        return {}

    def describe(self) -> str:
        return f"{self.kind} ({self.parent})" if self.parent else self.kind


def detect_memory_limiter() -> MemoryLimiter:
    """A memory cgroup for each run where this process may make one; else `rlimit`."""
    own_v1 = _own_v1_cgroup("memory", CGROUP_V1_MEMORY)
    if own_v1 is not None and (CGROUP_V1_MEMORY / "cgroup.procs").exists():
        probe = MemoryLimiter("cgroup-v1").settings(64 << 20)
        for root in (own_v1, CGROUP_V1_MEMORY):
            parent = _writable_cgroup_parent(root, probe) if root.is_dir() else None
            if parent:
                return MemoryLimiter("cgroup-v1", parent)
    own = _own_v2_cgroup()
    controllers = own / "cgroup.controllers" if own else None
    if own and controllers and controllers.exists() and "memory" in controllers.read_text().split():
        with contextlib.suppress(OSError):
            (own / "mezzo").mkdir(exist_ok=True)
            (own / "mezzo" / "cgroup.subtree_control").write_text("+memory +pids")
        parent = _writable_cgroup_parent(own, MemoryLimiter("cgroup-v2").settings(64 << 20))
        if parent:
            return MemoryLimiter("cgroup-v2", parent)
    return MemoryLimiter("rlimit")


def confine(
    child_pid: int,
    memory_limit_bytes: int,
    pid_limit: int,
    cgroups: list[PidsCgroup],
    pids_in_cgroup: bool,
) -> None:
    """Put the sandbox's first process (still blocked inside bwrap, before it runs anything)
    into the run's cgroup and give it the rlimits that every later process inherits.

    Done from outside while bwrap sets up, rather than by a trampoline before bwrap: moving a
    process between cgroup v1 groups waits for an RCU grace period (several ms), and here that
    wait overlaps bwrap's own setup instead of adding to it.
    """
    resource.prlimit(child_pid, resource.RLIMIT_AS, (memory_limit_bytes, memory_limit_bytes))
    resource.prlimit(child_pid, resource.RLIMIT_CORE, (0, 0))
    if not pids_in_cgroup:
        resource.prlimit(child_pid, resource.RLIMIT_NPROC, (pid_limit, pid_limit))
    for cgroup in cgroups:
        with open(cgroup.procs_file(), "w") as procs:
            procs.write(str(child_pid))
