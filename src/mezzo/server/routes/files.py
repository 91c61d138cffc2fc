"""A workspace's files: streamed upload, list, read, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from mezzo.files.models import FileInfo
from mezzo.server.deps import App, FileId, Tenant, WorkspaceId
from mezzo.server.status import documented

router = APIRouter()
ERRORS = documented(400, 401, 404, 409, 413, 422)


@router.post(
    "/v1/workspaces/{workspace}/files",
    response_model=FileInfo,
    status_code=201,
    responses={**ERRORS, 201: {"description": "stored and indexed"}},
    openapi_extra={"requestBody": {"content": {"application/octet-stream": {}}}},
)
async def upload_file(
    workspace: WorkspaceId,
    request: Request,
    who: Tenant,
    mezzo: App,
    name: Annotated[str, Query(min_length=1, max_length=255)],
) -> FileInfo:
    """Stream the request body to disk (never whole in memory), detect, summarise, index."""
    return await mezzo.upload_file(who, workspace, name, request.stream())


@router.get("/v1/workspaces/{workspace}/files", response_model=list[FileInfo], responses=ERRORS)
async def list_files(workspace: WorkspaceId, who: Tenant, mezzo: App) -> list[FileInfo]:
    return await mezzo.list_files(who, workspace)


@router.get("/v1/workspaces/{workspace}/files/{file_id}", response_model=FileInfo, responses=ERRORS)
async def get_file(workspace: WorkspaceId, file_id: FileId, who: Tenant, mezzo: App) -> FileInfo:
    return await mezzo.get_file(who, workspace, file_id)


@router.delete("/v1/workspaces/{workspace}/files/{file_id}", status_code=204, responses=ERRORS)
async def delete_file(workspace: WorkspaceId, file_id: FileId, who: Tenant, mezzo: App) -> Response:
    await mezzo.delete_file(who, workspace, file_id)
    return Response(status_code=204)
