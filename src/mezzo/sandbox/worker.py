"""`mezzo sandbox spawn-worker`: lease code-execution jobs from the `sandbox` queue, run each in a
fresh sandbox with the worker's spec, and store the result where the submitter can read it.

A job's payload is a `SandboxJob`: either `language` + `code` (+ `files`), as the `run_code`
tool takes them, or a `command`. The worker's flags decide mounts, limits and network; a job
cannot widen them. The result goes to the store's key-value space under `result_key(job_id)`
(`{"job", "worker", "status", "result" | "error"}`), then the job is acked. A payload that is
not a valid job is recorded as `status="invalid"` and acked (running it again cannot help);
a sandbox that fails to start is retried with backoff and dead-lettered after the store's
`max_attempts`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from mezzo import keys
from mezzo.logs import get_logger
from mezzo.sandbox.limits import SandboxUnavailable
from mezzo.sandbox.result import ExecResult
from mezzo.sandbox.runner import Sandbox, SandboxSetupError
from mezzo.sandbox.spec import SandboxSpec, SpecError, first_error
from mezzo.sandbox.tool import run_code
from mezzo.store.base import Job, LeaseLost

QUEUE = keys.SANDBOX_QUEUE
log = get_logger("mezzo.sandbox.worker")


def result_key(job_id: str) -> str:
    return keys.sandbox_result(job_id)


class SandboxJob(BaseModel):
    model_config = ConfigDict(extra="forbid")

    language: Literal["python", "shell"] | None = None
    code: str | None = None
    files: dict[str, str] | None = None
    command: list[str] | str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> SandboxJob:
        if (self.code is None) == (self.command is None):
            raise ValueError("a sandbox job has either `code` (with `language`) or `command`")
        if self.code is not None and self.language is None:
            raise ValueError("`code` needs `language`: python or shell")
        if self.command is not None and (self.language or self.files):
            raise ValueError("`command` jobs take no `language` or `files`")
        return self


class JobQueue(Protocol):
    """The part of `mezzo.store.base.Store` a sandbox worker uses."""

    async def lease(self, queue: str, worker: str, n: int, lease_s: float) -> list[Job]: ...
    async def extend(self, job: Job, lease_s: float) -> Job: ...
    async def ack(self, job: Job) -> None: ...
    async def retry(self, job: Job, delay_s: float, error: str) -> bool: ...
    async def kv_put(self, key: str, value: dict[str, Any]) -> None: ...


class SandboxWorker:
    def __init__(
        self,
        store: JobQueue,
        spec: SandboxSpec,
        *,
        sandbox: Sandbox | None = None,
        queue: str = QUEUE,
        concurrency: int = 1,
        name: str | None = None,
        poll_s: float = 0.2,
    ) -> None:
        self.store = store
        self.spec = spec
        self.sandbox = sandbox or Sandbox()
        self.queue = queue
        self.concurrency = concurrency
        self.name = name or f"sandbox-{socket.gethostname()}-{os.getpid()}"
        self.poll_s = poll_s
        self.lease_s = spec.time_limit_s + 30.0
        self.processed = 0
        self._running: set[asyncio.Task[None]] = set()

    async def serve(self, stop: asyncio.Event, *, drain: bool = False) -> None:
        """Lease and run jobs until `stop` is set (or, with `drain`, the queue is empty)."""
        self.sandbox.check()  # fail closed before taking any job
        log.info("sandbox worker started", worker=self.name, queue=self.queue)
        while not stop.is_set():
            free = self.concurrency - len(self._running)
            jobs = await self.store.lease(self.queue, self.name, free, self.lease_s) if free else []
            for job in jobs:
                task = asyncio.create_task(self.process(job))
                self._running.add(task)
                task.add_done_callback(self._running.discard)
            if drain and not jobs and not self._running:
                break
            if not jobs:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.poll_s)
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    async def process(self, job: Job) -> None:
        heartbeat = asyncio.create_task(self._heartbeat(job))
        try:
            record = await self._execute(job)
        except (SandboxSetupError, SandboxUnavailable, OSError) as exc:
            heartbeat.cancel()
            delay = min(60.0, 2.0**job.attempts)
            log.warning("sandbox job failed to start", job=job.id, error=str(exc))
            with contextlib.suppress(LeaseLost):
                await self.store.retry(job, delay, f"sandbox failed: {exc}")
            return
        finally:
            heartbeat.cancel()
        await self.store.kv_put(result_key(job.id), record)
        try:
            await self.store.ack(job)
        except LeaseLost:
            log.warning("sandbox job lease lost before ack", job=job.id)
        self.processed += 1
        log.info("sandbox job done", job=job.id, status=record["status"])

    async def _execute(self, job: Job) -> dict[str, Any]:
        base: dict[str, Any] = {"job": job.id, "worker": self.name}
        try:
            request = SandboxJob.model_validate(job.payload)
        except ValidationError as exc:
            return {**base, "status": "invalid", "error": first_error(exc)}
        try:
            result = await self._run(request)
        except SpecError as exc:
            return {**base, "status": "invalid", "error": str(exc)}
        return {**base, "status": "done", "result": result.model_dump(mode="json")}

    async def _run(self, request: SandboxJob) -> ExecResult:
        if request.command is not None:
            return await self.sandbox.run(request.command, self.spec)
        assert request.language is not None and request.code is not None
        return await run_code(
            request.language, request.code, request.files, spec=self.spec, sandbox=self.sandbox
        )

    async def _heartbeat(self, job: Job) -> None:
        while True:
            await asyncio.sleep(self.lease_s / 3)
            try:
                job = await self.store.extend(job, self.lease_s)
            except LeaseLost:
                log.warning("sandbox job lease lost while running", job=job.id)
                return
