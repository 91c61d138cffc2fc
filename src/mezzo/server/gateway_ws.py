"""WebSocket mode of the gateway's Responses API (`ws://mezzo/v1/responses`), as OpenAI serves it.

The client sends `{"type": "response.create", ...}` with the fields of an HTTP body (streaming
implied) and gets the Responses stream events as JSON text frames; one response is in flight
per connection. What the connection keeps between turns is `mezzo.gateway.session.Session`;
this module reads frames and writes events. Errors are
`{"type": "error", "status", "error": {"type", "code", "message", "param"}}` events and leave the
connection open.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from mezzo.errors import BadRequest, MezzoError
from mezzo.gateway import Gateway
from mezzo.gateway.callers import PRIORITY_HEADER, WORKSPACE_HEADER
from mezzo.gateway.errors import WireError, as_wire_error
from mezzo.gateway.session import Session
from mezzo.server.json_body import parse_json
from mezzo.server.ops_middleware import TENANT_SCOPE_KEY

# OpenAI closes a Responses WebSocket after 60 minutes.
MAX_CONNECTION_S = 3600.0
# A client that reads nothing for this long is disconnected (its turn charged for what it used).
SEND_TIMEOUT_S = 30.0
CLOSE_TOO_SLOW = 1008


class ClientTooSlow(Exception):
    pass


class Connection:
    def __init__(self, websocket: WebSocket, session: Session, max_frame: int) -> None:
        self.websocket = websocket
        self.session = session
        self.opened = time.monotonic()
        self.turn: asyncio.Task[None] | None = None
        self.max_frame = max_frame
        self._sending = asyncio.Lock()

    async def send(self, event: dict[str, Any]) -> None:
        text = json.dumps(event, separators=(",", ":"))
        async with self._sending:
            try:
                await asyncio.wait_for(self.websocket.send_text(text), SEND_TIMEOUT_S)
            except TimeoutError:
                raise ClientTooSlow from None

    async def refuse(self, error: WireError) -> None:
        await self.send(error.event())

    def _frame(self, message: Any) -> dict[str, Any]:
        """A `response.create` frame's body (streaming implied); raises WireError."""
        raw = message.get("text") or message.get("bytes") or b""
        if len(raw) > self.max_frame:
            raise WireError(
                400, f"The message is larger than {self.max_frame} bytes.", "message_too_large"
            )
        try:
            event = parse_json(raw)
        except BadRequest as exc:
            raise WireError(
                400, f"The message is not valid JSON: {exc.message}", "invalid_json"
            ) from None
        kind = event.get("type") if isinstance(event, dict) else None
        if kind != "response.create":
            raise WireError(
                400,
                f"Unknown event type {kind!r}; expected 'response.create'.",
                "unknown_event_type",
                "type",
            )
        if self.turn is not None and not self.turn.done():
            raise WireError(
                400,
                "A response is already in progress on this connection.",
                "response_already_in_progress",
            )
        return {**{k: v for k, v in event.items() if k != "type"}, "stream": True}

    async def serve(self) -> None:
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            try:
                body = self._frame(message)
            except WireError as error:
                await self.refuse(error)
                continue
            if time.monotonic() - self.opened > MAX_CONNECTION_S:
                await self.refuse(
                    WireError(
                        400,
                        "This connection reached its 60-minute limit; open a new one.",
                        "websocket_connection_limit_reached",
                    )
                )
                await self.websocket.close(code=1000)
                return
            self.turn = asyncio.create_task(self.run_turn(body))

    async def run_turn(self, body: dict[str, Any]) -> None:
        try:
            await self.session.run(body, self.send)
        except (WireError, MezzoError) as exc:
            await self.refuse(as_wire_error(exc))
        except ClientTooSlow:
            with contextlib.suppress(Exception):
                await self.websocket.close(code=CLOSE_TOO_SLOW, reason="the client is not reading")

    async def close(self) -> None:
        if self.turn is not None and not self.turn.done():
            self.turn.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.turn
        await self.session.close()


async def serve_connection(gateway: Gateway, websocket: WebSocket) -> None:
    await websocket.accept()
    workspace = websocket.headers.get(WORKSPACE_HEADER)
    priority = websocket.headers.get(PRIORITY_HEADER)
    try:
        tenant = await websocket.app.state.auth.tenant(websocket.headers.get("authorization"))
        websocket.scope[TENANT_SCOPE_KEY] = tenant
        caller = await gateway.caller(tenant, workspace, priority)
    except (WireError, MezzoError) as exc:
        error = as_wire_error(exc)
        with contextlib.suppress(Exception):
            await websocket.send_text(json.dumps(error.event()))
            await websocket.close(code=4000 + error.status, reason=error.message[:120])
        return
    session = Session(gateway, caller, workspace, priority)
    connection = Connection(websocket, session, gateway.mezzo.settings.max_body_bytes)
    try:
        await connection.serve()
    except (WebSocketDisconnect, RuntimeError, ClientTooSlow):
        pass
    finally:
        await connection.close()
