"""A tenant's workspaces: an index in the store's KV beside each workspace's own record.

An entry is named by the tenant's id for the workspace and holds its key in the store
(`keys.workspace_key`); an entry written before ids were per tenant holds no key (the id is
the key), and `Mezzo` finds either through `WorkspaceRecords.find`.
"""

from __future__ import annotations

from mezzo import keys
from mezzo.store.base import Store


async def add_workspace(store: Store, tenant: str, workspace: str, key: str) -> None:
    await store.kv_put(keys.tenant_workspace(tenant, workspace), {"id": workspace, "key": key})


async def workspaces_of(store: Store, tenant: str, limit: int = 1000) -> list[str]:
    """The tenant's ids of its workspaces, at most `limit`, in id order."""
    found = await store.kv_scan(keys.tenant_workspaces(tenant), limit)
    return [keys.last_part(key) for key, _ in found]
