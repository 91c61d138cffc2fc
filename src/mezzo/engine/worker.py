"""The worker pool: lease jobs, heartbeat, retry with backoff, graceful shutdown.

A job means "advance run R". Leases lapse when a worker dies; another worker then leases the
job and folds the same events. A worker whose lease was taken from it is cancelled at its next
heartbeat, and its appends fail on the run's version anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from mezzo import keys, tracing
from mezzo.engine.engine import Engine
from mezzo.engine.presence import keep_presence, withdraw
from mezzo.engine.retry import RetryLater, backoff
from mezzo.governor.router import priority_rank
from mezzo.logs import get_logger
from mezzo.protocol import NewEvent
from mezzo.store.base import Job, LeaseLost, NewJob, Store, StoreError, VersionConflict

log = get_logger("mezzo.worker")

RUN_QUEUE = keys.RUN_QUEUE
run_job_id = keys.run_job


def run_job(workspace: str, run: str, priority: str, max_attempts: int) -> NewJob:
    """The job that advances `run`: one per run, so enqueueing it twice runs it once more."""
    return NewJob(
        RUN_QUEUE,
        run_job_id(run),
        {"workspace": workspace, "run": run, "trace": tracing.carrier()},
        priority=priority_rank(priority),
        max_attempts=max_attempts,
    )


async def enqueue_run(
    store: Store, workspace: str, run: str, priority: str, max_attempts: int
) -> None:
    job = run_job(workspace, run, priority, max_attempts)
    await store.enqueue(
        job.queue, job.id, job.payload, priority=job.priority, max_attempts=job.max_attempts
    )


@dataclass(slots=True)
class WorkerStats:
    leased: int = 0
    completed_jobs: int = 0
    retried: int = 0
    dead: int = 0
    lost_leases: int = 0


class WorkerPool:
    def __init__(
        self,
        store: Store,
        engine: Engine,
        *,
        concurrency: int = 8,
        lease_s: float = 30.0,
        idle_poll_s: float = 0.05,
        name: str | None = None,
        after_outage: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self.store = store
        # Called once the store answers again after failing: a failover or a crash of the store
        # can lose a run's job while keeping its events (Mezzo passes `recover`).
        self.after_outage = after_outage
        self.engine = engine
        self.concurrency = concurrency
        self.lease_s = lease_s
        self.idle_poll_s = idle_poll_s
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.stats = WorkerStats()
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._main: asyncio.Task[None] | None = None
        self._presence: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._main = asyncio.create_task(self.run(), name=f"worker-pool:{self.name}")
        self._presence = asyncio.create_task(keep_presence(self), name=f"presence:{self.name}")

    @property
    def in_flight(self) -> list[str]:
        return sorted(task.get_name().removeprefix("job:") for task in self._tasks)

    @property
    def draining(self) -> bool:
        return self._stopping.is_set()

    def drain(self) -> None:
        """Take nothing new; in-flight jobs run to their end."""
        self._stopping.set()

    def counts(self) -> dict[str, int]:
        return {k: getattr(self.stats, k) for k in self.stats.__slots__}

    async def run(self) -> None:
        idle = self.idle_poll_s
        outage = False
        while not self._stopping.is_set():
            free = self.concurrency - len(self._tasks)
            jobs: list[Job] = []
            if free > 0:
                try:
                    jobs = await self.store.lease(RUN_QUEUE, self.name, free, self.lease_s)
                except StoreError as exc:
                    log.warning("lease failed", error=str(exc))
                    outage = True
                    await asyncio.sleep(1.0)
                    continue
                if outage:
                    outage = not await self._recover_after_outage()
            for job in jobs:
                self.stats.leased += 1
                task = asyncio.create_task(self._handle(job), name=f"job:{job.id}")
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            if jobs:
                idle = self.idle_poll_s
                continue
            await self._idle(idle)
            idle = min(idle * 2, 0.25)

    async def _recover_after_outage(self) -> bool:
        """Run `after_outage`; False (try again at the next lease) while the store still fails."""
        if self.after_outage is None:
            return True
        try:
            await self.after_outage()
        except StoreError as exc:
            log.warning("recovery after a store outage failed", error=str(exc))
            return False
        return True

    async def _idle(self, within: float) -> None:
        """Sleep until the store changes (a job may be ready), the pool stops, or `within` seconds pass."""
        stopping = asyncio.create_task(self._stopping.wait())
        waiter = getattr(self.store, "wait_for_change", None)
        changed = asyncio.create_task(waiter(within) if waiter else asyncio.sleep(within))
        try:
            await asyncio.wait(
                {stopping, changed}, timeout=within, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for task in (stopping, changed):
                task.cancel()
            await asyncio.gather(stopping, changed, return_exceptions=True)

    async def _handle(self, job: Job) -> None:
        holder = _LeaseHolder(self.store, job, self.lease_s)
        work = asyncio.create_task(self._advance(holder))
        beat = asyncio.create_task(holder.heartbeat(work))
        try:
            await work
        except LeaseLost:
            self.stats.lost_leases += 1
            log.warning("lease lost before ack", job=job.id)
        except StoreError as exc:
            # The store went away mid-job: the lease lapses and another attempt runs the step.
            log.warning("store error; the job's lease will lapse", job=job.id, error=str(exc))
        except asyncio.CancelledError:
            if holder.lost:
                self.stats.lost_leases += 1
                log.warning("lease lost; stopped work", job=job.id)
            else:
                with contextlib.suppress(StoreError):
                    await self.store.release(holder.job)
                raise
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat

    async def _advance(self, holder: _LeaseHolder) -> None:
        job = holder.job
        workspace, run = job.payload["workspace"], job.payload["run"]
        settings = self.engine.settings
        try:
            with (
                structlog.contextvars.bound_contextvars(workspace=workspace, run=run, job=job.id),
                tracing.span("mezzo.step", job.payload.get("trace"), run=run, attempt=job.attempts),
            ):
                outcome = await self.engine.advance(workspace, run)
        except RetryLater as later:
            delay = later.delay_s
            if delay is None:
                delay = backoff(
                    job.attempts, settings.retry_base_seconds, settings.retry_max_seconds
                )
            if later.counts:
                self.stats.retried += 1
                if not await self.store.retry(holder.job, delay, str(later)):
                    await self._give_up(workspace, run, job, str(later))
            else:
                await self.store.release(holder.job, delay)
            return
        except LeaseLost:
            raise
        except Exception as exc:
            log.exception("step failed", workspace=workspace, run=run, attempt=job.attempts)
            delay = backoff(job.attempts, settings.retry_base_seconds, settings.retry_max_seconds)
            self.stats.retried += 1
            error = f"{type(exc).__name__}: {exc}"
            if not await self.store.retry(holder.job, delay, error):
                await self._give_up(workspace, run, job, error)
            return
        log.debug("job done", run=run, outcome=outcome)
        self.stats.completed_jobs += 1
        await self.store.ack(holder.job)

    async def _give_up(self, workspace: str, run: str, job: Job, error: str) -> None:
        self.stats.dead += 1
        state = await self.engine.load(workspace, run)
        if state.terminal:
            return
        message = f"gave up after {job.attempts} attempts: {error}"
        with contextlib.suppress(VersionConflict):
            await self.store.append(
                workspace, run, [NewEvent(type="failed", data={"error": message})], state.version
            )

    async def shutdown(self, grace_s: float = 10.0) -> None:
        """Take nothing new; let in-flight steps finish for `grace_s`, then release them."""
        self._stopping.set()
        if self._main is not None:
            await self._main
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await withdraw(self, self._presence)


class _LeaseHolder:
    def __init__(self, store: Store, job: Job, lease_s: float) -> None:
        self.store = store
        self.job = job
        self.lease_s = lease_s
        self.lost = False

    async def heartbeat(self, work: asyncio.Task[None]) -> None:
        while True:
            await asyncio.sleep(self.lease_s / 3)
            try:
                self.job = await self.store.extend(self.job, self.lease_s)
            except LeaseLost:
                self.lost = True
                work.cancel()
                return
            except StoreError as exc:
                log.warning("heartbeat failed", job=self.job.id, error=str(exc))
