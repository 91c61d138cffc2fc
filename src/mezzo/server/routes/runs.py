"""Runs: submit (202; `server/hot.py` answers the common case of it first), read, cancel, and
the client's answers (tool results, human input)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Response

from mezzo.protocol import CancelIn, InputIn, RunAccepted, RunView, SubmitRun, ToolResultsIn
from mezzo.server.deps import App, RunId, Tenant, WorkspaceId
from mezzo.server.status import documented, links

router = APIRouter()
ERRORS = documented(400, 401, 404, 409, 413, 422)
IDEMPOTENCY_KEY_MAX = 200


@router.post(
    "/v1/workspaces/{workspace}/runs",
    response_model=RunAccepted,
    status_code=202,
    responses={
        **ERRORS,
        202: {
            "description": "accepted: the run is queued",
            "links": links(
                "run",
                "/run",
                ("/v1/runs/{run}", "get"),
                ("/v1/runs/{run}/cancel", "post"),
                ("/v1/runs/{run}/tool_results", "post"),
                ("/v1/runs/{run}/input", "post"),
            ),
        },
    },
)
async def submit_run(
    workspace: WorkspaceId,
    body: SubmitRun,
    who: Tenant,
    response: Response,
    mezzo: App,
    idempotency_key: Annotated[str | None, Header(max_length=IDEMPOTENCY_KEY_MAX)] = None,
) -> RunAccepted:
    accepted, _ = await mezzo.submit_run(who, workspace, body, idempotency_key)
    response.headers["location"] = accepted.run_url
    return accepted


@router.get("/v1/runs/{run}", response_model=RunView, responses=ERRORS)
async def get_run(run: RunId, who: Tenant, mezzo: App) -> RunView:
    return await mezzo.get_run(who, run)


@router.post("/v1/runs/{run}/cancel", response_model=RunView, responses=ERRORS)
async def cancel_run(run: RunId, who: Tenant, mezzo: App, body: CancelIn | None = None) -> RunView:
    return await mezzo.cancel_run(who, run, (body or CancelIn()).reason)


@router.post("/v1/runs/{run}/tool_results", response_model=RunView, responses=ERRORS)
async def tool_results(run: RunId, body: ToolResultsIn, who: Tenant, mezzo: App) -> RunView:
    return await mezzo.submit_tool_results(who, run, body)


@router.post("/v1/runs/{run}/input", response_model=RunView, responses=ERRORS)
async def submit_input(run: RunId, body: InputIn, who: Tenant, mezzo: App) -> RunView:
    return await mezzo.submit_input(who, run, body)
