"""A workspace's record (owner, configuration, throttle rate) and the per-process cache of it.

The owner and the configuration never change once a workspace exists (a create with another
configuration is a 409), so a process may keep them. The throttle rate changes at any time, from
any process: a cached record is trusted for `ttl_s`, so a throttle reaches every process within
that long, and at once in the process that set it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mezzo import keys
from mezzo.protocol import WorkspaceConfig
from mezzo.store.base import Store


@dataclass(frozen=True, slots=True)
class WorkspaceRecord:
    id: str
    tenant: str
    config: WorkspaceConfig
    throttle_rate: float
    created_at: float = 0.0

    @classmethod
    def from_kv(cls, value: dict[str, Any]) -> WorkspaceRecord:
        return cls(
            id=value["id"],
            tenant=value["tenant"],
            config=WorkspaceConfig.model_validate(value["config"]),
            throttle_rate=float(value.get("throttle_rate", 1.0)),
            created_at=float(value.get("created_at", 0.0)),
        )


class WorkspaceRecords:
    """Workspace records by id, read through to the store at most once per `ttl_s` each."""

    def __init__(
        self,
        store: Store,
        *,
        ttl_s: float = 1.0,
        size: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self.size = size
        self._clock = clock
        self._records: dict[str, tuple[WorkspaceRecord, float]] = {}

    async def get(self, workspace: str) -> WorkspaceRecord | None:
        cached = self._records.get(workspace)
        now = self._clock()
        if cached is not None and now - cached[1] < self.ttl_s:
            return cached[0]
        value = await self.store.kv_get(keys.workspace(workspace))
        if value is None:
            self._records.pop(workspace, None)
            return None
        record = WorkspaceRecord.from_kv(value)
        self.remember(record)
        return record

    def remember(self, record: WorkspaceRecord) -> None:
        if len(self._records) >= self.size:
            self._records.clear()
        self._records[record.id] = (record, self._clock())

    def forget(self, workspace: str) -> None:
        self._records.pop(workspace, None)
