"""`Sandbox.run`: one command in a fresh bubblewrap sandbox, with limits, capped output and egress.

The run is a child `bwrap` process: new user/pid/net/ipc/uts/mount namespaces, `--die-with-parent`
(its pid 1 gets SIGKILL if bwrap or we die), so killing bwrap on the time limit tears down the
whole pid namespace, grandchildren that ignore SIGTERM included. bwrap waits on `--block-fd`
after building the sandbox while `limits.confine` gives its first process the run's rlimits and
cgroup; its exit is awaited through a pidfd, without a thread.

Peak memory is measured by GNU `time` run inside the sandbox around the command (bwrap's outer
process does not reap the sandbox's processes, and a process forked from this one inherits its
RSS high-water mark, so our own `wait4` could not tell); it writes through an inherited pipe.
Without `/usr/bin/time` in the image, the peak is `None`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import weakref
from collections.abc import Sequence
from functools import partial
from pathlib import Path

from mezzo.logs import get_logger
from mezzo.sandbox import seccomp
from mezzo.sandbox.bwrap import build_argv, build_etc
from mezzo.sandbox.egress import AddressPolicy, EgressProxy, Resolver, is_public_address
from mezzo.sandbox.limits import (
    MemoryLimiter,
    PidLimiter,
    PidsCgroup,
    SandboxUnavailable,
    confine,
    detect_memory_limiter,
    detect_pid_limiter,
)
from mezzo.sandbox.mounts import MountChanged, open_mount_sources
from mezzo.sandbox.result import CappedOutput, ExecResult
from mezzo.sandbox.spec import HOST_IMAGE, SandboxSpec

log = get_logger("mezzo.sandbox")
BWRAP_OWN_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
PIPE_DRAIN_TIMEOUT_S = 5.0
TIME_BINARY = "/usr/bin/time"


class SandboxSetupError(RuntimeError):
    """bubblewrap could not build the sandbox (the command never started)."""


class _Capture(asyncio.Protocol):
    def __init__(self, output: CappedOutput) -> None:
        self.output = output
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.output.feed(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


class Sandbox:
    """Runs commands in fresh sandboxes. One instance can serve many concurrent runs."""

    def __init__(
        self,
        *,
        bwrap: str | None = None,
        resolver: Resolver | None = None,
        address_allowed: AddressPolicy = is_public_address,
    ) -> None:
        self.bwrap = bwrap or shutil.which("bwrap") or ""
        self.resolver = resolver
        self.address_allowed = address_allowed
        self._workspace = Path(tempfile.mkdtemp(prefix="mezzo-sandbox-"))
        self._finalizer = weakref.finalize(self, shutil.rmtree, self._workspace, True)
        build_etc(self._workspace / "etc")
        self._pid_limiter: PidLimiter | None = None
        self._memory_limiter: MemoryLimiter | None = None
        self._cleanups: set[asyncio.Task[None]] = set()
        self._pending_cgroups: dict[Path, PidsCgroup] = {}

    @property
    def workspace(self) -> Path:
        """This instance's private folder (generated /etc files, proxy sockets)."""
        return self._workspace

    def close(self) -> None:
        for cgroup in list(self._pending_cgroups.values()):
            cgroup.kill_and_remove()
        self._pending_cgroups.clear()
        self._finalizer()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def check(self) -> PidLimiter:
        """Fail closed: raise `SandboxUnavailable` unless bwrap and the limits work here."""
        if self._pid_limiter is not None:
            return self._pid_limiter
        if not self.bwrap:
            raise SandboxUnavailable(
                "bubblewrap (bwrap) is not installed: apt-get install bubblewrap"
            )
        probe = build_argv(
            SandboxSpec(), ["/bin/true"], etc_dir=self._workspace / "etc", bwrap=self.bwrap
        )
        done = subprocess.run(
            probe, capture_output=True, env=BWRAP_OWN_ENV, timeout=30, check=False
        )
        if done.returncode != 0:
            reason = done.stderr.decode(errors="replace").strip() or f"exit {done.returncode}"
            raise SandboxUnavailable(f"cannot create namespaces with bubblewrap: {reason}")
        self._pid_limiter = detect_pid_limiter()
        self._memory_limiter = detect_memory_limiter()
        if self._memory_limiter.parent is None:
            log.warning(
                "no memory cgroup here: the sandbox's memory limit holds per process only",
                memory=self._memory_limiter.describe(),
            )
        return self._pid_limiter

    @property
    def memory_limiter(self) -> MemoryLimiter:
        """How memory limits hold here (after `check`)."""
        self.check()
        assert self._memory_limiter is not None
        return self._memory_limiter

    async def run(
        self, command: str | Sequence[str], spec: SandboxSpec | None = None
    ) -> ExecResult:
        """Run `command` (a string goes to `/bin/sh -c`) in a fresh sandbox built from `spec`."""
        spec = spec or SandboxSpec()
        argv_command = ["/bin/sh", "-c", command] if isinstance(command, str) else list(command)
        if not argv_command:
            raise ValueError("empty command")
        limiter = self.check()
        memory = self.memory_limiter
        async with contextlib.AsyncExitStack() as stack:
            try:
                mount_fds = open_mount_sources(spec.mounts)
            except MountChanged as exc:
                raise SandboxSetupError(str(exc)) from None
            stack.callback(_close_all, mount_fds)
            proxy_socket = None
            if spec.allow_net:
                proxy_socket = await self._start_proxy(spec, stack)
            cgroups: list[PidsCgroup] = []
            memory_cgroup = None
            memory_settings = memory.settings(spec.memory_limit_bytes)
            if limiter.parent is not None:
                shared = memory.parent == limiter.parent  # v2: one cgroup holds both
                settings = {"pids.max": str(spec.pid_limit), **(memory_settings if shared else {})}
                cgroups.append(PidsCgroup.create_with(limiter.parent, settings))
                stack.callback(self._remove_soon, cgroups[-1])
                memory_cgroup = cgroups[-1] if shared else None
            if memory.parent is not None and memory_cgroup is None:
                cgroups.append(PidsCgroup.create_with(memory.parent, memory_settings))
                stack.callback(self._remove_soon, cgroups[-1])
                memory_cgroup = cgroups[-1]
            result = await self._run_bwrap(
                argv_command, spec, proxy_socket, cgroups, limiter.parent is not None, mount_fds
            )
            if memory_cgroup is not None and memory_cgroup.oom_kills():
                result = result.model_copy(update={"memory_limited": True})
        return result

    def _remove_soon(self, cgroup: PidsCgroup) -> None:
        if cgroup.try_remove():
            return
        self._pending_cgroups[cgroup.path] = cgroup
        task = asyncio.get_running_loop().create_task(cgroup.kill_and_remove_async())
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)
        task.add_done_callback(lambda _: self._pending_cgroups.pop(cgroup.path, None))

    async def _start_proxy(self, spec: SandboxSpec, stack: contextlib.AsyncExitStack) -> str:
        if spec.image != HOST_IMAGE and not (Path(spec.image) / "usr/bin/socat").exists():
            raise SandboxSetupError(f"image {spec.image} has no /usr/bin/socat for allow_net")
        folder = Path(tempfile.mkdtemp(prefix="egress-", dir=self._workspace))
        stack.callback(shutil.rmtree, folder, True)
        socket_path = str(folder / "proxy.sock")
        proxy = EgressProxy(
            spec.allow_net,
            allowed_ports=spec.allowed_ports,
            resolver=self.resolver or _default_resolver(),
            address_allowed=self.address_allowed,
        )
        await proxy.start(socket_path)
        stack.push_async_callback(proxy.close)
        return socket_path

    async def _run_bwrap(
        self,
        command: list[str],
        spec: SandboxSpec,
        proxy_socket: str | None,
        cgroups: list[PidsCgroup],
        pids_in_cgroup: bool,
        mount_fds: list[int],
    ) -> ExecResult:
        loop = asyncio.get_running_loop()
        status_read, status_write = os.pipe()
        peak_read, peak_write = os.pipe()
        block_read, block_write = os.pipe()
        os.set_blocking(peak_read, False)
        image_root = Path("/") if spec.image == HOST_IMAGE else Path(spec.image)
        if (image_root / TIME_BINARY.lstrip("/")).exists():
            command = [TIME_BINARY, "-q", "-f", "%M", "-o", f"/proc/self/fd/{peak_write}", *command]
        seccomp_read = _seccomp_pipe()
        argv = build_argv(
            spec,
            command,
            etc_dir=self._workspace / "etc",
            proxy_socket=proxy_socket,
            status_fd=status_write,
            block_fd=block_read,
            seccomp_fd=seccomp_read,
            bwrap=self.bwrap,
            mount_fds=mount_fds,
        )
        child_fds = [
            fd for fd in (status_write, peak_write, block_read, seccomp_read) if fd is not None
        ]
        inherited = (*child_fds, *mount_fds)
        started = time.monotonic()
        try:
            process = _spawn(argv, inherited)
        finally:
            for fd in child_fds:
                os.close(fd)
        assert process.stdout is not None and process.stderr is not None
        stdout = CappedOutput(spec.output_limit_bytes)
        stderr = CappedOutput(spec.output_limit_bytes)
        transports = []
        captures = []
        for output, pipe in ((stdout, process.stdout), (stderr, process.stderr)):
            transport, capture = await loop.connect_read_pipe(partial(_Capture, output), pipe)
            transports.append(transport)
            captures.append(capture)
        status_transport, status = await loop.connect_read_pipe(
            _StatusReader, os.fdopen(status_read, "rb", buffering=0)
        )
        timed_out = False
        try:
            wait_status = await asyncio.wait_for(
                self._supervise(process.pid, status, block_write, spec, cgroups, pids_in_cgroup),
                spec.time_limit_s,
            )
        except TimeoutError:
            timed_out = True
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
            wait_status = await _wait_exit(process.pid)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
            await _wait_exit(process.pid)
            raise
        finally:
            with contextlib.suppress(OSError):
                os.close(block_write)
        process.returncode = os.waitstatus_to_exitcode(wait_status)  # reaped here, not by Popen
        if timed_out:
            for cgroup in cgroups:
                cgroup.kill_and_remove()
        try:
            await asyncio.wait_for(
                asyncio.gather(*(capture.closed for capture in captures), status.closed),
                PIPE_DRAIN_TIMEOUT_S,
            )
        except TimeoutError:
            log.warning("sandbox pipes still open after exit; closing them")
        finally:
            for transport in (*transports, status_transport):
                transport.close()
        code = os.waitstatus_to_exitcode(wait_status)
        if status.exit_code is None and not timed_out:
            message = stderr.text().strip() or f"bwrap exited with {code}"
            raise SandboxSetupError(f"sandbox setup failed: {message}")
        killed_by: int | None = None
        if timed_out:
            killed_by = signal.SIGKILL
        elif code > 128 and code - 128 < signal.NSIG:
            killed_by = code - 128
        return ExecResult(
            stdout=stdout.text(),
            stderr=stderr.text(),
            exit_code=None if timed_out else code,
            signal=killed_by,
            timed_out=timed_out,
            stdout_truncated=stdout.truncated,
            stderr_truncated=stderr.truncated,
            duration_s=time.monotonic() - started,
            peak_memory_bytes=_read_peak(peak_read),
        )

    async def _supervise(
        self,
        pid: int,
        status: _StatusReader,
        block_write: int,
        spec: SandboxSpec,
        cgroups: list[PidsCgroup],
        pids_in_cgroup: bool,
    ) -> int:
        """Confine the sandbox's first process while bwrap builds its mounts (it waits on the
        block fd before running anything), release it, and wait for bwrap to exit."""
        child = await status.child_pid
        if child is not None:
            try:
                await asyncio.to_thread(
                    confine, child, spec.memory_limit_bytes, spec.pid_limit, cgroups, pids_in_cgroup
                )
            except OSError as exc:
                raise SandboxUnavailable(f"cannot apply the sandbox's limits: {exc}") from exc
            os.write(block_write, b"go")
        return await _wait_exit(pid)


class _StatusReader(asyncio.Protocol):
    """bwrap's `--json-status-fd`: `child-pid` once the sandbox is forked, `exit-code` when
    the command has run (absent when bwrap failed to build the sandbox)."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.child_pid: asyncio.Future[int | None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.exit_code: int | None = None
        self._buffer = ""
        self._decoder = json.JSONDecoder()

    def data_received(self, data: bytes) -> None:
        self._buffer += data.decode(errors="replace")
        while self._buffer.strip():
            try:
                entry, end = self._decoder.raw_decode(self._buffer.lstrip())
            except json.JSONDecodeError:
                return
            self._buffer = self._buffer.lstrip()[end:]
            if not isinstance(entry, dict):
                continue
            if "child-pid" in entry and not self.child_pid.done():
                self.child_pid.set_result(int(entry["child-pid"]))
            if "exit-code" in entry:
                self.exit_code = int(entry["exit-code"])

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.child_pid.done():
            self.child_pid.set_result(None)
        if not self.closed.done():
            self.closed.set_result(None)


def _default_resolver() -> Resolver:
    from mezzo.sandbox.egress import system_resolver

    return system_resolver


def _seccomp_pipe() -> int | None:
    """A pipe holding the seccomp program for bwrap to read, or None on an unknown arch."""
    filter_program = seccomp.program()
    if filter_program is None:
        return None
    read_end, write_end = os.pipe()
    os.write(write_end, filter_program)  # a few hundred bytes: fits the pipe buffer
    os.close(write_end)
    return read_end


def _spawn(argv: list[str], pass_fds: tuple[int, ...]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=BWRAP_OWN_ENV,
        pass_fds=pass_fds,
    )


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def _reap(pid: int) -> int | None:
    reaped, status = os.waitpid(pid, os.WNOHANG)
    return status if reaped else None


def _read_peak(fd: int) -> int | None:
    """The last line GNU time wrote (max RSS in KiB), if any."""
    try:
        raw = os.read(fd, 4096)
    except BlockingIOError:
        raw = b""
    finally:
        os.close(fd)
    lines = raw.decode(errors="replace").split()
    return int(lines[-1]) * 1024 if lines and lines[-1].isdigit() else None


async def _wait_exit(pid: int) -> int:
    """Wait for `pid` without a thread: a pidfd becomes readable when the process exits."""
    loop = asyncio.get_running_loop()
    pidfd = os.pidfd_open(pid)
    exited: asyncio.Future[None] = loop.create_future()

    def on_exit() -> None:
        if not exited.done():
            exited.set_result(None)

    loop.add_reader(pidfd, on_exit)
    try:
        status = _reap(pid)
        while status is None:
            await exited
            status = _reap(pid)
        return status
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)
