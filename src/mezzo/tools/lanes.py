"""Blocking work of many tenants without one of them stalling the others.

`TenantLanes` owns a thread pool of its own (never asyncio's default executor, which store
reads and the rest of the server share) and lets at most `per_tenant` jobs of one tenant hold
its threads at once; a tenant's further jobs wait in an asyncio queue, holding no thread. With
`threads > per_tenant`, one tenant alone can never fill the pool.
"""

from __future__ import annotations

import asyncio
import functools
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class TenantLanes:
    def __init__(self, threads: int, per_tenant: int, name: str) -> None:
        self.threads = threads
        self.per_tenant = per_tenant
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix=name)
        self._gates: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[str, tuple[asyncio.Semaphore, list[int]]]
        ] = weakref.WeakKeyDictionary()

    async def run(self, tenant: str, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        gates = self._gates.setdefault(loop, {})
        gate, users = gates.setdefault(tenant, (asyncio.Semaphore(self.per_tenant), [0]))
        users[0] += 1
        try:
            async with gate:
                call = functools.partial(function, *args, **kwargs)
                return await loop.run_in_executor(self._pool, call)
        finally:
            users[0] -= 1
            if not users[0]:
                gates.pop(tenant, None)


_TOOL_LANES = TenantLanes(16, 4, "mezzo-tool")


def tool_lanes() -> TenantLanes:
    """The lanes synchronous server-side tools run in (one per process)."""
    return _TOOL_LANES


def configure_tool_lanes(threads: int, per_tenant: int) -> TenantLanes:
    global _TOOL_LANES
    if (threads, per_tenant) != (_TOOL_LANES.threads, _TOOL_LANES.per_tenant):
        _TOOL_LANES = TenantLanes(threads, per_tenant, "mezzo-tool")
    return _TOOL_LANES
