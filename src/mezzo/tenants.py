"""A tenant's workspaces: an index in the store's KV beside each workspace's own record."""

from __future__ import annotations

from mezzo import keys
from mezzo.store.base import Store


async def add_workspace(store: Store, tenant: str, workspace: str) -> None:
    await store.kv_put(keys.tenant_workspace(tenant, workspace), {"id": workspace})


async def workspaces_of(store: Store, tenant: str, limit: int = 1000) -> list[str]:
    """The ids of a tenant's workspaces, at most `limit`, in id order."""
    found = await store.kv_scan(keys.tenant_workspaces(tenant), limit)
    return [keys.last_part(key) for key, _ in found]
