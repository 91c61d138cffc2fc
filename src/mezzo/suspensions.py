"""Runs suspended because their workspace's budget is spent, so a top-up can resume them."""

from __future__ import annotations

import time

from mezzo import keys
from mezzo.store.base import Store


async def suspend(store: Store, workspace: str, run: str) -> None:
    await store.kv_put(keys.suspended(workspace, run), {"run": run, "since": time.time()})


async def suspended_runs(store: Store, workspace: str) -> list[str]:
    found = await store.kv_scan(keys.suspended_runs(workspace), limit=100_000)
    return [keys.last_part(key) for key, _ in found]


async def unsuspend(store: Store, workspace: str, run: str) -> None:
    await store.kv_delete(keys.suspended(workspace, run))
