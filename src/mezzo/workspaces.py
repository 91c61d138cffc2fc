"""A workspace's record (owner, configuration, throttle rate) and the per-process cache of it.

A workspace has two names. Its `public_id` is the id its tenant gave it, unique within that
tenant only, and the only one a client ever sees. Its `id` is its key in the store
(`keys.workspace_key`): the event log, ledger, files, holds and jobs are all under it, so the
engine, the governor and the gateway work with `id` and never meet another tenant's workspace
of the same name. A workspace made before ids were per tenant has its id as its key.

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
from mezzo.bounds import is_id
from mezzo.protocol import WorkspaceConfig
from mezzo.store.base import Store
from mezzo.text import scrubbed


@dataclass(frozen=True, slots=True)
class WorkspaceRecord:
    id: str  # the store's key for it
    tenant: str
    config: WorkspaceConfig
    throttle_rate: float
    created_at: float = 0.0
    name: str = ""  # the tenant's id for it; "" where it is `id` (made before ids were per tenant)

    @property
    def public_id(self) -> str:
        """The id its tenant gave it: what every answer, event and view shows."""
        return self.name or self.id

    @classmethod
    def from_kv(cls, value: dict[str, Any]) -> WorkspaceRecord:
        # A record written before text was checked at the edge may hold a lone surrogate: read
        # as U+FFFD, so that nothing downstream (views, prompts) fails on it.
        return cls(
            id=value["id"],
            tenant=value["tenant"],
            config=WorkspaceConfig.model_validate(scrubbed(value["config"])),
            throttle_rate=float(value.get("throttle_rate", 1.0)),
            created_at=float(value.get("created_at", 0.0)),
            name=str(value.get("name", "")),
        )


def configured_key(name: str) -> str:
    """The key of a workspace an operator names in the settings (`MEZZO_SCAN_FOLDERS`):
    `tenant/id`, or a bare id for a workspace made before ids were per tenant."""
    tenant, slash, workspace = name.rpartition("/")
    return keys.workspace_key(tenant, workspace) if slash else name


class WorkspaceRecords:
    """Workspace records by key, read through to the store at most once per `ttl_s` each, and a
    tenant's ids resolved to keys (kept: an id's key never changes)."""

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
        self._keys: dict[tuple[str, str], str] = {}

    async def get(self, key: str) -> WorkspaceRecord | None:
        """The record under `key`, whoever owns it."""
        cached = self._records.get(key)
        now = self._clock()
        if cached is not None and now - cached[1] < self.ttl_s:
            return cached[0]
        value = await self.store.kv_get(keys.workspace(key))
        if value is None:
            self._records.pop(key, None)
            return None
        record = WorkspaceRecord.from_kv(value)
        self.remember(record)
        return record

    async def find(self, tenant: str, workspace: str) -> WorkspaceRecord | None:
        """`tenant`'s workspace `workspace` (the tenant's id for it), None when it has none.
        Its key, else (a workspace made before ids were per tenant) the id itself as a key,
        owned by this tenant."""
        known = self._keys.get((tenant, workspace))
        if known is not None:
            return await self.get(known)
        if not is_id(workspace):
            return None
        for key in (keys.workspace_key(tenant, workspace), workspace):
            record = await self.get(key)
            if record is not None and record.tenant == tenant and record.public_id == workspace:
                if len(self._keys) >= self.size:
                    self._keys.clear()
                self._keys[(tenant, workspace)] = key
                return record
        return None

    def remember(self, record: WorkspaceRecord) -> None:
        if len(self._records) >= self.size:
            self._records.clear()
        self._records[record.id] = (record, self._clock())

    def forget(self, key: str) -> None:
        self._records.pop(key, None)
