"""Runs suspended because their workspace's budget is spent, so a top-up can resume them."""

from __future__ import annotations

import time

from mezzo.store.base import Store

SUSPENDED_PREFIX = "suspended/"


def _key(workspace: str, run: str) -> str:
    return f"{SUSPENDED_PREFIX}{workspace}/{run}"


async def suspend(store: Store, workspace: str, run: str) -> None:
    await store.kv_put(_key(workspace, run), {"run": run, "since": time.time()})


async def suspended_runs(store: Store, workspace: str) -> list[str]:
    return [
        key.rsplit("/", 1)[1]
        for key, _ in await store.kv_scan(f"{SUSPENDED_PREFIX}{workspace}/", limit=100_000)
    ]


async def unsuspend(store: Store, workspace: str, run: str) -> None:
    await store.kv_delete(_key(workspace, run))
