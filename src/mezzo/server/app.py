"""The HTTP API: FastAPI routes over `mezzo.service.Mezzo`, WebSocket and SSE delivery."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import structlog
from fastapi import Depends, FastAPI, Header, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from mezzo import __version__
from mezzo.errors import MezzoError
from mezzo.files.models import FileInfo
from mezzo.protocol import (
    BudgetIn,
    CancelIn,
    CreateWorkspace,
    ErrorBody,
    Event,
    InputIn,
    RunAccepted,
    RunView,
    SubmitRun,
    ThrottleIn,
    ToolResultsIn,
    Workspace,
)
from mezzo.server.auth import Authenticator
from mezzo.server.limits import BodySizeLimit
from mezzo.server.ops_middleware import OpsMiddleware
from mezzo.service import Mezzo, parse_types
from mezzo.store.base import StoreUnavailable

log = structlog.get_logger("mezzo.server")

SSE_HEARTBEAT_S = 15.0
ERRORS = {status: {"model": ErrorBody} for status in (400, 401, 404, 409, 413, 422)}


async def current_tenant(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> str:
    authenticator: Authenticator = request.app.state.auth
    return await authenticator.tenant(authorization)


Tenant = Annotated[str, Depends(current_tenant)]


def create_app(mezzo: Mezzo, *, manage_lifecycle: bool = True, workers: bool = True) -> FastAPI:
    auth: Authenticator | None = None

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        nonlocal auth
        if manage_lifecycle:
            await mezzo.start(workers=workers)
        auth = Authenticator(mezzo.store)
        app.state.auth = auth
        try:
            yield
        finally:
            if manage_lifecycle:
                await mezzo.stop()

    app = FastAPI(
        title="mezzo",
        version=__version__,
        summary="Durable, governed agent runs behind a 202 and an event stream.",
        lifespan=lifespan,
    )

    @app.exception_handler(MezzoError)
    async def _mezzo_error(_: Request, exc: MezzoError) -> JSONResponse:
        return JSONResponse(
            ErrorBody(error=exc.message, detail=exc.detail).model_dump(), status_code=exc.status
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        first = problems[0] if problems else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"])
        return JSONResponse(
            ErrorBody(
                error=f"invalid request: {where}: {first['msg']}", detail=problems
            ).model_dump(),
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            ErrorBody(error=str(exc.detail)).model_dump(),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(StoreUnavailable)
    async def _unavailable(_: Request, exc: StoreUnavailable) -> JSONResponse:
        return JSONResponse(
            ErrorBody(error=f"the store is unavailable: {exc}").model_dump(),
            status_code=503,
            headers={"retry-after": "1"},
        )

    # ---- health

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses={503: {"model": ErrorBody}})
    async def readyz() -> JSONResponse:
        try:
            await mezzo.store.head("__readyz__")
        except Exception as exc:
            return JSONResponse({"error": f"store not ready: {exc}"}, status_code=503)
        return JSONResponse({"status": "ready", "workers": mezzo.pool is not None})

    # ---- workspaces

    @app.post("/v1/workspaces", response_model=Workspace, status_code=201, responses=ERRORS)
    async def create_workspace(body: CreateWorkspace, who: Tenant, response: Response) -> Workspace:
        workspace, created = await mezzo.create_workspace(who, body)
        if not created:
            response.status_code = 200
        response.headers["location"] = f"/v1/workspaces/{workspace.id}"
        return workspace

    @app.get("/v1/workspaces", response_model=list[Workspace], responses=ERRORS)
    async def list_workspaces(who: Tenant) -> list[Workspace]:
        return await mezzo.list_workspaces(who)

    @app.get("/v1/workspaces/{workspace}", response_model=Workspace, responses=ERRORS)
    async def get_workspace(workspace: str, who: Tenant) -> Workspace:
        return await mezzo.get_workspace(who, workspace)

    @app.post("/v1/workspaces/{workspace}/throttle", response_model=Workspace, responses=ERRORS)
    async def throttle(workspace: str, body: ThrottleIn, who: Tenant) -> Workspace:
        return await mezzo.throttle(who, workspace, body.rate)

    @app.post("/v1/workspaces/{workspace}/budget", response_model=Workspace, responses=ERRORS)
    async def add_budget(workspace: str, body: BudgetIn, who: Tenant) -> Workspace:
        return await mezzo.add_budget(who, workspace, body.add_tokens)

    # ---- runs

    @app.post(
        "/v1/workspaces/{workspace}/runs",
        response_model=RunAccepted,
        status_code=202,
        responses=ERRORS,
    )
    async def submit_run(
        workspace: str,
        body: SubmitRun,
        who: Tenant,
        response: Response,
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> RunAccepted:
        accepted, _ = await mezzo.submit_run(who, workspace, body, idempotency_key)
        response.headers["location"] = accepted.run_url
        return accepted

    @app.get("/v1/runs/{run}", response_model=RunView, responses=ERRORS)
    async def get_run(run: str, who: Tenant) -> RunView:
        return await mezzo.get_run(who, run)

    @app.post("/v1/runs/{run}/cancel", response_model=RunView, responses=ERRORS)
    async def cancel_run(run: str, who: Tenant, body: CancelIn | None = None) -> RunView:
        return await mezzo.cancel_run(who, run, (body or CancelIn()).reason)

    @app.post("/v1/runs/{run}/tool_results", response_model=RunView, responses=ERRORS)
    async def tool_results(run: str, body: ToolResultsIn, who: Tenant) -> RunView:
        return await mezzo.submit_tool_results(who, run, body)

    @app.post("/v1/runs/{run}/input", response_model=RunView, responses=ERRORS)
    async def submit_input(run: str, body: InputIn, who: Tenant) -> RunView:
        return await mezzo.submit_input(who, run, body)

    # ---- files

    @app.post(
        "/v1/workspaces/{workspace}/files",
        response_model=FileInfo,
        status_code=201,
        responses={**ERRORS, 201: {"description": "stored and indexed"}},
        openapi_extra={"requestBody": {"content": {"application/octet-stream": {}}}},
    )
    async def upload_file(
        workspace: str,
        request: Request,
        who: Tenant,
        name: Annotated[str, Query(min_length=1, max_length=255)],
    ) -> FileInfo:
        """Stream the request body to disk (never whole in memory), detect, summarise, index."""
        return await mezzo.upload_file(who, workspace, name, request.stream())

    @app.get("/v1/workspaces/{workspace}/files", response_model=list[FileInfo], responses=ERRORS)
    async def list_files(workspace: str, who: Tenant) -> list[FileInfo]:
        return await mezzo.list_files(who, workspace)

    @app.get(
        "/v1/workspaces/{workspace}/files/{file_id}", response_model=FileInfo, responses=ERRORS
    )
    async def get_file(workspace: str, file_id: str, who: Tenant) -> FileInfo:
        return await mezzo.get_file(who, workspace, file_id)

    @app.delete("/v1/workspaces/{workspace}/files/{file_id}", status_code=204, responses=ERRORS)
    async def delete_file(workspace: str, file_id: str, who: Tenant) -> Response:
        await mezzo.delete_file(who, workspace, file_id)
        return Response(status_code=204)

    # ---- events: JSON page, SSE, WebSocket

    @app.get(
        "/v1/workspaces/{workspace}/events",
        response_model=list[Event],
        responses={**ERRORS, 200: {"content": {"text/event-stream": {}}}},
    )
    async def events(
        workspace: str,
        request: Request,
        who: Tenant,
        after: Annotated[int, Query(ge=0)] = 0,
        types: str | None = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
        last_event_id: Annotated[str | None, Header()] = None,
    ) -> Response:
        wanted = parse_types(types)
        if "text/event-stream" not in request.headers.get("accept", ""):
            page = await mezzo.events(who, workspace, after, wanted, limit)
            return JSONResponse([e.model_dump(mode="json") for e in page])
        if last_event_id and last_event_id.isdigit():
            after = max(after, int(last_event_id))
        await mezzo.check_cursor(who, workspace, after)
        stream = mezzo.subscribe(who, workspace, after, wanted)
        return StreamingResponse(
            _sse(stream),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
        )

    @app.websocket("/v1/workspaces/{workspace}/events")
    async def events_ws(websocket: WebSocket, workspace: str) -> None:
        assert auth is not None
        params = websocket.query_params
        try:
            who = await auth.tenant(websocket.headers.get("authorization"), params.get("token"))
            after = int(params.get("after", "0"))
            wanted = parse_types(params.get("types"))
            await mezzo.check_cursor(who, workspace, after)
        except MezzoError as exc:
            await websocket.accept()
            await websocket.close(code=4000 + exc.status, reason=exc.message[:120])
            return
        except ValueError:
            await websocket.accept()
            await websocket.close(code=4400, reason="after must be an integer")
            return
        await websocket.accept()
        stream = mezzo.subscribe(who, workspace, after, wanted)
        sender = asyncio.create_task(_pump_ws(websocket, stream))
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender
            # Close the subscription now (its tasks, its store cursor), not whenever GC does.
            with contextlib.suppress(Exception):
                await stream.aclose()

    from mezzo.server.dashboard import dashboard_router  # imports Tenant from this module

    app.include_router(dashboard_router(mezzo))
    from mezzo.server.gateway import gateway_router

    gateway = gateway_router(mezzo)
    app.include_router(gateway)
    app.state.gateway = gateway.gateway
    app.state.gateway_hot_routes = gateway.hot
    from mezzo.server.admin import admin_router

    app.include_router(admin_router(mezzo))
    from mezzo.server.gateway import fallback_router

    app.include_router(fallback_router())  # last: any other path under /v1, OpenAI-shaped
    return app


async def _pump_ws(websocket: WebSocket, stream: AsyncIterator[Event]) -> None:
    try:
        async for event in stream:
            await websocket.send_text(event.model_dump_json())
    except (WebSocketDisconnect, RuntimeError):
        return


async def _sse(stream: AsyncIterator[Event]) -> AsyncIterator[bytes]:
    # A slow reader holds at most this many events here; the rest stays in the store.
    queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=32)

    async def pump() -> None:
        async for event in stream:
            await queue.put(event)

    task = asyncio.create_task(pump())
    try:
        yield b": mezzo event stream\n\n"
        while True:
            try:
                event = await asyncio.wait_for(queue.get(), SSE_HEARTBEAT_S)
            except TimeoutError:
                if task.done():
                    break
                yield b": keep-alive\n\n"
                continue
            lines = []
            if event.seq is not None:
                lines.append(f"id: {event.seq}")
            lines.append(f"event: {event.type}")
            lines.append(
                "data: " + json.dumps(event.model_dump(mode="json"), separators=(",", ":"))
            )
            yield ("\n".join(lines) + "\n\n").encode()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


def build_asgi(
    mezzo: Mezzo, *, manage_lifecycle: bool = True, workers: bool = True
) -> BodySizeLimit:
    from mezzo.server.gateway import FastPath

    app = create_app(mezzo, manage_lifecycle=manage_lifecycle, workers=workers)
    # Uploads stream to disk under their own limit (max_upload_bytes).
    limited = OpsMiddleware(FastPath(app, app.state.gateway_hot_routes), mezzo)
    return BodySizeLimit(limited, mezzo.settings.max_body_bytes, exempt_suffixes=("/files",))
