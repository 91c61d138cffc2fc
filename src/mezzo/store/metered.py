"""A store that counts what passes through it: appended events, leases, retries, dead letters.

It wraps any backend and forwards every call of the `Store` contract unchanged (each one
written out, so the type checker holds it to the contract); the counts go to `mezzo.metrics`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from mezzo import metrics
from mezzo.protocol import Event, NewEvent
from mezzo.store.base import (
    DeadJob,
    Hold,
    HoldResult,
    Job,
    LeaseLost,
    LedgerState,
    NewJob,
    RateLimit,
    Settlement,
    Store,
)


class MeteredStore:
    def __init__(self, inner: Store) -> None:
        self.inner = inner

    async def append(
        self,
        workspace: str,
        run: str | None,
        events: Sequence[NewEvent],
        expected_version: int | None,
        *,
        enqueue: NewJob | None = None,
        durable: bool = True,
    ) -> list[Event]:
        stored = await self.inner.append(
            workspace, run, events, expected_version, enqueue=enqueue, durable=durable
        )
        metrics.observe_events(stored)
        return stored

    async def hold(
        self,
        workspace: str,
        hold: Hold,
        *,
        run: str | None = None,
        events: Sequence[NewEvent] = (),
        expected_version: int | None = None,
    ) -> HoldResult:
        result = await self.inner.hold(
            workspace, hold, run=run, events=events, expected_version=expected_version
        )
        metrics.observe_events(result.events)
        return result

    async def settle(
        self,
        workspace: str,
        hold_id: str,
        actual: int,
        thresholds: Sequence[float],
        *,
        run: str | None = None,
        events: Sequence[NewEvent] = (),
        expected_version: int | None = None,
    ) -> Settlement:
        settlement = await self.inner.settle(
            workspace,
            hold_id,
            actual,
            thresholds,
            run=run,
            events=events,
            expected_version=expected_version,
        )
        metrics.observe_events(settlement.events)
        return settlement

    async def lease(self, queue: str, worker: str, n: int, lease_s: float) -> list[Job]:
        jobs = await self.inner.lease(queue, worker, n, lease_s)
        if jobs:
            metrics.jobs_leased.inc(len(jobs))
            again = sum(1 for job in jobs if job.attempts > 1)
            if again:
                metrics.jobs_reclaimed.inc(again)
        return jobs

    async def extend(self, job: Job, lease_s: float) -> Job:
        try:
            return await self.inner.extend(job, lease_s)
        except LeaseLost:
            metrics.leases_lost.inc()
            raise

    async def ack(self, job: Job) -> None:
        try:
            await self.inner.ack(job)
        except LeaseLost:
            metrics.leases_lost.inc()
            raise

    async def retry(self, job: Job, delay_s: float, error: str) -> bool:
        again = await self.inner.retry(job, delay_s, error)
        (metrics.job_retries if again else metrics.jobs_dead_lettered).inc()
        return again


    # ---- forwarded unchanged
    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()

    async def wait_for_change(self, within: float) -> None:
        await self.inner.wait_for_change(within)

    async def read(
        self,
        workspace: str,
        after_seq: int = 0,
        types: Sequence[str] | None = None,
        limit: int = 1000,
        run: str | None = None,
    ) -> list[Event]:
        return await self.inner.read(workspace, after_seq, types, limit, run)

    def tail(
        self,
        workspace: str,
        after_seq: int = 0,
        types: Sequence[str] | None = None,
        run: str | None = None,
    ) -> AsyncIterator[Event]:
        return self.inner.tail(workspace, after_seq, types, run)

    async def trim(self, workspace: str, keep: int = 10_000) -> int:
        return await self.inner.trim(workspace, keep)

    async def head(self, workspace: str) -> int:
        return await self.inner.head(workspace)

    async def run_version(self, run: str) -> int:
        return await self.inner.run_version(run)

    async def run_workspace(self, run: str) -> str | None:
        return await self.inner.run_workspace(run)

    async def active_runs(
        self, limit: int = 1000, workspace: str | None = None
    ) -> list[tuple[str, str]]:
        return await self.inner.active_runs(limit, workspace)

    async def publish_live(self, event: Event) -> None:
        await self.inner.publish_live(event)

    def live(self, workspace: str) -> AsyncIterator[Event]:
        return self.inner.live(workspace)

    async def enqueue(
        self,
        queue: str,
        job_id: str,
        payload: dict[str, Any],
        *,
        priority: int = 0,
        not_before: float | None = None,
        max_attempts: int = 5,
    ) -> bool:
        return await self.inner.enqueue(
            queue,
            job_id,
            payload,
            priority=priority,
            not_before=not_before,
            max_attempts=max_attempts,
        )

    async def release(self, job: Job, delay_s: float = 0.0) -> None:
        await self.inner.release(job, delay_s)

    async def queue_depth(self, queue: str) -> dict[int, int]:
        return await self.inner.queue_depth(queue)

    async def queue_oldest(self, queue: str) -> dict[int, float]:
        return await self.inner.queue_oldest(queue)

    async def dead_letters(self, queue: str, limit: int = 100) -> list[DeadJob]:
        return await self.inner.dead_letters(queue, limit)

    async def requeue_dead(self, queue: str, job_id: str) -> bool:
        return await self.inner.requeue_dead(queue, job_id)

    async def kv_get(self, key: str) -> dict[str, Any] | None:
        return await self.inner.kv_get(key)

    async def kv_put(self, key: str, value: dict[str, Any]) -> None:
        await self.inner.kv_put(key, value)

    async def kv_put_if_absent(self, key: str, value: dict[str, Any]) -> bool:
        return await self.inner.kv_put_if_absent(key, value)

    async def kv_delete(self, key: str) -> bool:
        return await self.inner.kv_delete(key)

    async def kv_scan(self, prefix: str, limit: int = 1000) -> list[tuple[str, dict[str, Any]]]:
        return await self.inner.kv_scan(prefix, limit)

    async def ledger_init(self, workspace: str, budget: int) -> None:
        await self.inner.ledger_init(workspace, budget)

    async def ledger_get(self, workspace: str) -> LedgerState:
        return await self.inner.ledger_get(workspace)

    async def ledger_add(self, workspace: str, tokens: int) -> LedgerState:
        return await self.inner.ledger_add(workspace, tokens)

    async def release_reservation(self, workspace: str, hold_id: str) -> None:
        await self.inner.release_reservation(workspace, hold_id)

    async def acquire(
        self,
        key: str,
        requests: int,
        tokens: int,
        limits: tuple[RateLimit | None, RateLimit | None],
    ) -> float:
        return await self.inner.acquire(key, requests, tokens, limits)

    async def block_until(self, key: str, until: float) -> None:
        await self.inner.block_until(key, until)


def metered(store: Store) -> Store:
    return store if isinstance(store, MeteredStore) else MeteredStore(store)
