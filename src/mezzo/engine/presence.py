"""Workers announce themselves in the store's KV (`worker/{name}`: in-flight job ids, counts,
a timestamp) and poll `drain/{name}`, the flag an operator sets to drain them: take nothing
new, finish what is in flight."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, Protocol

from mezzo import keys
from mezzo.logs import get_logger
from mezzo.store.base import Store, StoreError

log = get_logger("mezzo.worker")

BEAT_S = 2.0


class Announced(Protocol):
    store: Store
    name: str
    concurrency: int
    lease_s: float

    @property
    def in_flight(self) -> list[str]: ...
    @property
    def draining(self) -> bool: ...
    def drain(self) -> None: ...
    def counts(self) -> dict[str, int]: ...


worker_key = keys.worker
drain_key = keys.drain


def worker_record(pool: Announced, now: float | None = None) -> dict[str, Any]:
    return {
        "name": pool.name,
        "concurrency": pool.concurrency,
        "lease_s": pool.lease_s,
        "jobs": pool.in_flight,
        "draining": pool.draining,
        "counts": pool.counts(),
        "beat_s": BEAT_S,
        "ts": time.time() if now is None else now,
    }


async def keep_presence(pool: Announced, every_s: float = BEAT_S) -> None:
    """Beat until cancelled; drain the pool when its flag appears."""
    while True:
        try:
            if not pool.draining and await pool.store.kv_get(drain_key(pool.name)) is not None:
                log.info("draining: taking no new jobs", worker=pool.name)
                pool.drain()
            await pool.store.kv_put(worker_key(pool.name), worker_record(pool))
        except StoreError as exc:
            log.warning("worker heartbeat failed", error=str(exc))
        await asyncio.sleep(every_s)


async def withdraw(pool: Announced, beat: asyncio.Task[None] | None) -> None:
    """Stop beating and remove the worker's keys (a clean shutdown)."""
    if beat is not None:
        beat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beat
    with contextlib.suppress(StoreError):
        await pool.store.kv_delete(worker_key(pool.name))
        await pool.store.kv_delete(drain_key(pool.name))
