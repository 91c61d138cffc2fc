"""The HTTP server: FastAPI over `mezzo.service.Mezzo`, one router per area, the service and the
authenticator on `app.state`, and the ASGI layers in front of it (`build_asgi`)."""

from __future__ import annotations

import gc
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp

from mezzo import __version__
from mezzo.protocol import ErrorBody
from mezzo.providers.openai_wire.errors import WireError
from mezzo.server import admin, dashboard
from mezzo.server.auth import Authenticator
from mezzo.server.encoding import SafeJSONResponse
from mezzo.server.fanout import Fanout
from mezzo.server.gateway import FastPath, fallback_router, gateway_router
from mezzo.server.hot import HotRoutes
from mezzo.server.json_body import JsonDepthLimit
from mezzo.server.limits import BodySizeLimit
from mezzo.server.ops_middleware import OpsMiddleware
from mezzo.server.routes import events, files, health, runs, workspaces
from mezzo.server.status import STATUS, error_body, error_response
from mezzo.service import Mezzo


def create_app(mezzo: Mezzo, *, manage_lifecycle: bool = True, workers: bool = True) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if manage_lifecycle:
            await mezzo.start(workers=workers)
        app.state.auth = Authenticator(mezzo.store)
        # What exists now (modules, the app, the engine) lives as long as the process: out of
        # the cyclic collector's sight, its full scans stop stalling requests (up to 130 ms,
        # several times a second under load; see docs/benchmarks.md).
        gc.freeze()
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
    app.state.mezzo = mezzo
    app.state.fanout = Fanout(lambda: mezzo.store)
    for error in STATUS:
        app.add_exception_handler(cast(type[Exception], error), _expected_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    for router in (
        health.router,
        workspaces.router,
        runs.router,
        files.router,
        events.router,
        dashboard.router,
    ):
        app.include_router(router)
    gateway = gateway_router(mezzo)
    app.include_router(gateway)
    app.state.gateway = gateway.gateway
    app.state.gateway_hot_routes = gateway.hot
    app.include_router(admin.router)
    app.include_router(fallback_router())  # last: any other path under /v1, OpenAI-shaped
    return app


async def _expected_error(_: Request, exc: Exception) -> Response:
    return error_response(exc)


async def _invalid_request(_: Request, exc: RequestValidationError) -> Response:
    problems = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    first = problems[0] if problems else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(p) for p in first["loc"])
    return SafeJSONResponse(
        ErrorBody(error=f"invalid request: {where}: {first['msg']}", detail=problems).model_dump(),
        status_code=422,
    )


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    headers = dict(getattr(exc, "headers", None) or {})
    if exc.status_code == 405:
        methods = _documented_methods(request)
        if methods:
            headers = {k: v for k, v in headers.items() if k.lower() != "allow"}
            headers["allow"] = ", ".join(methods)
    return SafeJSONResponse(
        ErrorBody(error=str(exc.detail)).model_dump(), status_code=exc.status_code, headers=headers
    )


def _documented_methods(request: Request) -> list[str]:
    """Every method the OpenAPI schema gives the request's path (Starlette's 405 names only the
    methods of the first route that matched, and a path has one route per method)."""
    app = cast(FastAPI, request.app)
    paths: list[tuple[re.Pattern[str], list[str]]] | None = getattr(app.state, "paths", None)
    if paths is None:
        paths = app.state.paths = [
            (
                re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(path)) + "$"),
                sorted(method.upper() for method in item),
            )
            for path, item in app.openapi().get("paths", {}).items()
        ]
    path = request.url.path
    return next((methods for pattern, methods in paths if pattern.match(path)), [])


# mezzo's own routes answer errors in mezzo's shape; every other path under /v1 is the
# OpenAI-compatible gateway's, which answers in OpenAI's.
MEZZO_ROUTES = ("/v1/workspaces", "/v1/runs", "/v1/admin", "/v1/system")


def _too_deep(path: str, message: str) -> bytes:
    if path.startswith("/v1/") and not path.startswith(MEZZO_ROUTES):
        return json.dumps(WireError(400, message, "invalid_json").body()).encode()
    return error_body(message)


def build_asgi(
    mezzo: Mezzo, *, manage_lifecycle: bool = True, workers: bool = True, hot_routes: bool = True
) -> BodySizeLimit:
    """The whole server: body size limit → operations (metrics, rate limit, request log) → JSON
    depth limit → hot routes (the submit route, the gateway's two POST routes) → FastAPI.
    `hot_routes=False` leaves every request to FastAPI (the tests compare the two)."""
    app = create_app(mezzo, manage_lifecycle=manage_lifecycle, workers=workers)
    routed: ASGIApp = app
    if hot_routes:
        routed = HotRoutes(FastPath(app, app.state.gateway_hot_routes), mezzo, app.state)
    # Uploads stream to disk under their own limit (max_upload_bytes); their bodies are files.
    uploads = ("/files",)
    shallow = JsonDepthLimit(routed, exempt_suffixes=uploads, refusal=_too_deep)
    return BodySizeLimit(
        OpsMiddleware(shallow, mezzo, app.state),
        mezzo.settings.max_body_bytes,
        exempt_suffixes=uploads,
    )
