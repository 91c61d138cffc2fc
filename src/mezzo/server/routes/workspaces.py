"""Workspaces: create (idempotent), read, list, throttle, top up the budget."""

from __future__ import annotations

from fastapi import APIRouter, Response

from mezzo.protocol import BudgetIn, CreateWorkspace, ThrottleIn, Workspace
from mezzo.server.deps import App, Tenant, WorkspaceId
from mezzo.server.status import documented, links

router = APIRouter()
ERRORS = documented(400, 401, 404, 409, 413, 422)
WORKSPACE = "/v1/workspaces/{workspace}"
TO_THE_WORKSPACE = links(
    "workspace",
    "/id",
    (WORKSPACE, "get"),
    (f"{WORKSPACE}/runs", "post"),
    (f"{WORKSPACE}/throttle", "post"),
    (f"{WORKSPACE}/budget", "post"),
    (f"{WORKSPACE}/events", "get"),
    (f"{WORKSPACE}/files", "get"),
    (f"{WORKSPACE}/files", "post"),
)


@router.post(
    "/v1/workspaces",
    response_model=Workspace,
    status_code=201,
    responses={
        **ERRORS,
        200: {
            "model": Workspace,
            "description": "it exists with this configuration",
            "links": TO_THE_WORKSPACE,
        },
        201: {"description": "created", "links": TO_THE_WORKSPACE},
    },
)
async def create_workspace(
    body: CreateWorkspace, who: Tenant, response: Response, mezzo: App
) -> Workspace:
    workspace, created = await mezzo.create_workspace(who, body)
    if not created:
        response.status_code = 200
    response.headers["location"] = f"/v1/workspaces/{workspace.id}"
    return workspace


@router.get("/v1/workspaces", response_model=list[Workspace], responses=ERRORS)
async def list_workspaces(who: Tenant, mezzo: App) -> list[Workspace]:
    return await mezzo.list_workspaces(who)


@router.get("/v1/workspaces/{workspace}", response_model=Workspace, responses=ERRORS)
async def get_workspace(workspace: WorkspaceId, who: Tenant, mezzo: App) -> Workspace:
    return await mezzo.get_workspace(who, workspace)


@router.post("/v1/workspaces/{workspace}/throttle", response_model=Workspace, responses=ERRORS)
async def throttle(workspace: WorkspaceId, body: ThrottleIn, who: Tenant, mezzo: App) -> Workspace:
    return await mezzo.throttle(who, workspace, body.rate)


@router.post("/v1/workspaces/{workspace}/budget", response_model=Workspace, responses=ERRORS)
async def add_budget(workspace: WorkspaceId, body: BudgetIn, who: Tenant, mezzo: App) -> Workspace:
    return await mezzo.add_budget(who, workspace, body.add_tokens)
