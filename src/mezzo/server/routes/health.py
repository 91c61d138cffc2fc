"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from mezzo.protocol import ErrorBody
from mezzo.server.deps import App

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"model": ErrorBody}})
async def readyz(mezzo: App) -> JSONResponse:
    try:
        await mezzo.store.head("__readyz__")
    except Exception as exc:
        return JSONResponse({"error": f"store not ready: {exc}"}, status_code=503)
    return JSONResponse({"status": "ready", "workers": mezzo.pool is not None})
