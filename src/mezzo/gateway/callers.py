"""Who is asking: a tenant, the workspace its request is charged to, and how urgent it is.

The workspace is the one named by `X-Mezzo-Workspace`, else the tenant's default gateway
workspace `gateway-<tenant>`, created with the default configuration on first use. Both go
through `Mezzo`'s tenant checks (and its per-process cache of workspace records), as every
other route does: a workspace of another tenant is not found.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from mezzo.errors import NotFound
from mezzo.governor.router import Priority
from mezzo.protocol import CreateWorkspace
from mezzo.providers.openai_wire.errors import WireError
from mezzo.service import Mezzo
from mezzo.workspaces import WorkspaceRecord

WORKSPACE_HEADER = "x-mezzo-workspace"
PRIORITY_HEADER = "x-mezzo-priority"
_SAFE_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")


@dataclass(frozen=True, slots=True)
class Caller:
    tenant: str
    record: WorkspaceRecord
    priority: str


def default_workspace(tenant: str) -> str:
    """`gateway-<tenant>`, or a digest of the tenant where its name is not a valid id."""
    if _SAFE_ID.match(tenant):
        return f"gateway-{tenant}"
    return f"gateway-{hashlib.sha256(tenant.encode()).hexdigest()[:16]}"


def priority_of(header: str | None) -> str | None:
    if header is None:
        return None
    try:
        return Priority(header.strip().lower()).value
    except ValueError:
        raise WireError(
            400,
            f"unknown priority {header!r}; high, normal or low",
            "invalid_priority",
            "X-Mezzo-Priority",
        ) from None


async def find_caller(
    mezzo: Mezzo, tenant: str, workspace: str | None, priority: str | None
) -> Caller:
    wanted = priority_of(priority)
    if workspace:
        try:
            record = await mezzo.workspace_record(tenant, workspace)
        except NotFound:
            raise WireError(
                404,
                f"workspace {workspace!r} not found",
                "workspace_not_found",
                "X-Mezzo-Workspace",
            ) from None
    else:
        record = await _default(mezzo, tenant)
    return Caller(tenant, record, wanted or record.config.priority)


async def _default(mezzo: Mezzo, tenant: str) -> WorkspaceRecord:
    workspace = default_workspace(tenant)
    try:
        return await mezzo.workspace_record(tenant, workspace)
    except NotFound:
        await mezzo.create_workspace(tenant, CreateWorkspace(id=workspace))
        return await mezzo.workspace_record(tenant, workspace)
