"""A workspace's events: a JSON page, a server-sent event stream, or a WebSocket; the streams
replay from `after` (or `Last-Event-ID`) and then follow live."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import Response, StreamingResponse

from mezzo.bounds import MAX_SEQ, parse_seq
from mezzo.errors import InvalidCursor
from mezzo.protocol import ALL_EVENT_TYPES, Event
from mezzo.server import sse
from mezzo.server.deps import App, Tenant, WorkspaceId, get_auth, get_fanout, get_mezzo
from mezzo.server.encoding import JSON, events_json
from mezzo.server.fanout import BEHIND, RETRY_LATER, Subscription, behind_reason
from mezzo.server.status import close_code, documented, message_for, status_for
from mezzo.server.ws_frames import frame_sink
from mezzo.service import parse_types

router = APIRouter()
ERRORS = documented(400, 401, 404, 409, 413, 422)
_NAME = "|".join(sorted(ALL_EVENT_TYPES))
# Event type names, comma-separated (spaces around them allowed); empty: every type.
TYPES_PATTERN = rf"^(?:\s*(?:{_NAME})(?:\s*,\s*(?:{_NAME}))*\s*)?$"


@router.get(
    "/v1/workspaces/{workspace}/events",
    response_model=list[Event],
    responses={**ERRORS, 200: {"content": {sse.MEDIA_TYPE: {}}}},
)
async def events(
    workspace: WorkspaceId,
    request: Request,
    who: Tenant,
    mezzo: App,
    after: Annotated[int, Query(ge=0, le=MAX_SEQ)] = 0,
    # The pattern documents the names for clients and fuzzers; an unknown name is a 400 that
    # names it (`parse_types`), not a pattern mismatch.
    types: Annotated[str | None, Query(json_schema_extra={"pattern": TYPES_PATTERN})] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    last_event_id: Annotated[
        str | None, Header(description="SSE: the seq of the last event received; resumes after it")
    ] = None,
) -> Response:
    if sse.MEDIA_TYPE not in request.headers.get("accept", ""):
        page = await mezzo.events(who, workspace, after, types, limit)
        return Response(events_json(page), media_type=JSON)
    if last_event_id:
        resumed = parse_seq(last_event_id.strip())
        if resumed is None:
            raise InvalidCursor("Last-Event-ID must be the seq of an event (ASCII digits)")
        after = max(after, resumed)
    record = await mezzo.check_cursor(who, workspace, after, types)
    stream = sse.event_stream(get_fanout(request), record, after, parse_types(types))
    return StreamingResponse(stream, media_type=sse.MEDIA_TYPE, headers=sse.HEADERS)


@router.websocket("/v1/workspaces/{workspace}/events")
async def events_ws(websocket: WebSocket, workspace: str) -> None:
    """Replay from `after`, then live events, one JSON text message each, from the workspace's
    dispatcher (`mezzo.server.fanout`). A subscriber that reads slower than events come is
    closed with `BEHIND` (4408, "behind: resume after seq N") and resumes from its last seq."""
    mezzo, auth = get_mezzo(websocket), get_auth(websocket)
    params = websocket.query_params
    try:
        who = await auth.tenant(websocket.headers.get("authorization"), params.get("token"))
        after = parse_seq(params.get("after", "0"))
        if after is None:
            raise InvalidCursor("after must be the seq of an event (ASCII digits)")
        wanted = params.get("types")
        record = await mezzo.check_cursor(who, workspace, after, wanted)
    except Exception as exc:
        if status_for(exc) is None:
            raise
        await websocket.accept()
        await websocket.close(code=close_code(exc), reason=message_for(exc)[:120])
        return
    await websocket.accept()
    sink = frame_sink(websocket.scope)
    fanout = get_fanout(websocket)
    async with fanout.subscribe(record, after, parse_types(wanted), sink) as subscription:
        writer = asyncio.create_task(_write(websocket, subscription))
        subscription.on_end = writer.cancel
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            subscription.on_end = None
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer


async def _write(websocket: WebSocket, subscription: Subscription) -> None:
    """Send `subscription`'s events; close the socket when it is cut off or its reader fails
    (cancelled by `on_end` then, wherever it waits)."""
    try:
        async for item in subscription:
            subscription.sending = True
            await websocket.send_text(item.text)
            subscription.sending = False
    except asyncio.CancelledError:
        if not subscription.ended:
            raise
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
    except (WebSocketDisconnect, RuntimeError, OSError):
        return
    if subscription.behind:
        code, reason = BEHIND, behind_reason(subscription.sent)
    else:
        code, reason = RETRY_LATER, "the workspace's event reader failed: reconnect"
    with contextlib.suppress(Exception):
        await websocket.close(code=code, reason=reason)
