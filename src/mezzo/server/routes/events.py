"""A workspace's events: a JSON page, a server-sent event stream, or a WebSocket; the streams
replay from `after` (or `Last-Event-ID`) and then follow live."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import Response, StreamingResponse

from mezzo.protocol import Event
from mezzo.server import sse
from mezzo.server.deps import App, Tenant, get_auth, get_mezzo
from mezzo.server.encoding import JSON, event_json, events_json
from mezzo.server.status import close_code, documented, message_for, status_for
from mezzo.service import parse_types

router = APIRouter()
ERRORS = documented(400, 401, 404, 409, 413, 422)
CLOSE_BAD_CURSOR = 4400


@router.get(
    "/v1/workspaces/{workspace}/events",
    response_model=list[Event],
    responses={**ERRORS, 200: {"content": {sse.MEDIA_TYPE: {}}}},
)
async def events(
    workspace: str,
    request: Request,
    who: Tenant,
    mezzo: App,
    after: Annotated[int, Query(ge=0)] = 0,
    types: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    last_event_id: Annotated[str | None, Header()] = None,
) -> Response:
    wanted = parse_types(types)
    if sse.MEDIA_TYPE not in request.headers.get("accept", ""):
        page = await mezzo.events(who, workspace, after, wanted, limit)
        return Response(events_json(page), media_type=JSON)
    if last_event_id and last_event_id.isdigit():
        after = max(after, int(last_event_id))
    await mezzo.check_cursor(who, workspace, after)
    stream = mezzo.subscribe(who, workspace, after, wanted)
    return StreamingResponse(
        sse.event_stream(stream), media_type=sse.MEDIA_TYPE, headers=sse.HEADERS
    )


@router.websocket("/v1/workspaces/{workspace}/events")
async def events_ws(websocket: WebSocket, workspace: str) -> None:
    mezzo, auth = get_mezzo(websocket), get_auth(websocket)
    params = websocket.query_params
    try:
        who = await auth.tenant(websocket.headers.get("authorization"), params.get("token"))
        after = int(params.get("after", "0"))
        wanted = parse_types(params.get("types"))
        await mezzo.check_cursor(who, workspace, after)
    except ValueError:
        await websocket.accept()
        await websocket.close(code=CLOSE_BAD_CURSOR, reason="after must be an integer")
        return
    except Exception as exc:
        if status_for(exc) is None:
            raise
        await websocket.accept()
        await websocket.close(code=close_code(exc), reason=message_for(exc)[:120])
        return
    await websocket.accept()
    stream = mezzo.subscribe(who, workspace, after, wanted)
    sender = asyncio.create_task(_pump(websocket, stream))
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


async def _pump(websocket: WebSocket, stream: AsyncIterator[Event]) -> None:
    try:
        async for event in stream:
            await websocket.send_text(event_json(event))
    except (WebSocketDisconnect, RuntimeError):
        return
