"""A store that counts what passes through it: appended events, leases, retries, dead letters.

It wraps any backend and forwards every call unchanged; the counts go to `mezzo.metrics`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from mezzo import metrics
from mezzo.protocol import Event, NewEvent
from mezzo.store.base import Hold, HoldResult, Job, LeaseLost, NewJob, Settlement, Store


class MeteredStore:
    def __init__(self, inner: Store) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

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

    async def hold(self, workspace: str, hold: Hold, **log: Any) -> HoldResult:
        result = await self.inner.hold(workspace, hold, **log)
        metrics.observe_events(result.events)
        return result

    async def settle(
        self,
        workspace: str,
        hold_id: str,
        actual: int,
        thresholds: Sequence[float],
        **log: Any,
    ) -> Settlement:
        settlement = await self.inner.settle(workspace, hold_id, actual, thresholds, **log)
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


def metered(store: Store) -> Store:
    if isinstance(store, MeteredStore):
        return cast(Store, store)
    return cast(Store, MeteredStore(store))
