"""WebSocket mode of the gateway's Responses API (`ws://mezzo/v1/responses`), as OpenAI serves it.

The client sends `{"type": "response.create", ...}` with the fields of an HTTP body (streaming
implied) and gets the Responses stream events as JSON text frames. One response is in flight
per connection. The connection keeps its most recent response (transcript, workspace), so the
next turn sends only new items plus `previous_response_id`, even with `store: false`; a failed
turn forgets it. `generate: false` holds a conversation without generating (nothing charged).
Errors are `{"type": "error", "status", "error": {"type", "code", "message", "param"}}` events
and leave the connection open. While the client runs its tool, the connection re-reads its
workspace for the next turn's admission, and a stored response is written to the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from mezzo.errors import MezzoError
from mezzo.logs import get_logger
from mezzo.providers.openai import OpenAIProvider
from mezzo.server.gateway_service import (
    PRIORITY_HEADER,
    WORKSPACE_HEADER,
    Caller,
    Conversation,
    Gateway,
    as_wire_error,
    not_found_previous,
)
from mezzo.server.gateway_upstream import UpstreamSession, speaks_responses_ws
from mezzo.server.gateway_wire import WireError, parse_responses_body

log = get_logger("mezzo.gateway")

# OpenAI closes a Responses WebSocket after 60 minutes.
MAX_CONNECTION_S = 3600.0
# A client that reads nothing for this long is disconnected (its turn charged for what it used).
SEND_TIMEOUT_S = 30.0
CLOSE_TOO_SLOW = 1008


class ClientTooSlow(Exception):
    pass


class Connection:
    def __init__(self, gateway: Gateway, websocket: WebSocket, caller: Caller) -> None:
        self.gateway = gateway
        self.websocket = websocket
        self.caller = caller
        self.opened = time.monotonic()
        self.latest: Conversation | None = None
        self.turn: asyncio.Task[None] | None = None
        self.settling: asyncio.Future[Any] | None = None
        self.refreshing: asyncio.Task[Caller] | None = None
        self.max_frame = gateway.mezzo.settings.max_body_bytes
        self._sending = asyncio.Lock()
        self.upstreams: dict[str, UpstreamSession] = {}

    def upstream(self, provider_name: str) -> UpstreamSession | None:
        """This connection's own WebSocket to the provider, where it speaks one."""
        session = self.upstreams.get(provider_name)
        if session is None:
            provider = self.gateway.mezzo.providers.get(provider_name)
            if not speaks_responses_ws(provider):
                return None
            assert isinstance(provider, OpenAIProvider)
            session = self.upstreams[provider_name] = UpstreamSession(provider)
        return session

    async def send(self, event: dict[str, Any]) -> None:
        text = json.dumps(event, separators=(",", ":"))
        async with self._sending:
            try:
                await asyncio.wait_for(self.websocket.send_text(text), SEND_TIMEOUT_S)
            except TimeoutError:
                raise ClientTooSlow from None

    async def refuse(self, error: WireError) -> None:
        await self.send(error.event())

    async def serve(self) -> None:
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            raw = message.get("text") or message.get("bytes") or b""
            if len(raw) > self.max_frame:
                await self.refuse(
                    WireError(
                        400,
                        f"The message is larger than {self.max_frame} bytes.",
                        "message_too_large",
                    )
                )
                continue
            try:
                event = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                await self.refuse(WireError(400, "The message is not valid JSON.", "invalid_json"))
                continue
            kind = event.get("type") if isinstance(event, dict) else None
            if kind != "response.create":
                await self.refuse(
                    WireError(
                        400,
                        f"Unknown event type {kind!r}; expected 'response.create'.",
                        "unknown_event_type",
                        "type",
                    )
                )
                continue
            if self.turn is not None and not self.turn.done():
                await self.refuse(
                    WireError(
                        400,
                        "A response is already in progress on this connection.",
                        "response_already_in_progress",
                    )
                )
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
            body = {key: value for key, value in event.items() if key != "type"}
            body["stream"] = True
            self.turn = asyncio.create_task(self.run_turn(body))

    async def _settled(self) -> None:
        """The last turn's usage commit and store write (overlapped with the client's tool)."""
        settling, self.settling = self.settling, None
        if settling is not None:
            try:
                await settling
            except Exception:
                log.exception("gateway: settling a turn failed")

    async def _ready_caller(self) -> Caller:
        if self.refreshing is not None:
            with contextlib.suppress(Exception):
                self.caller = await self.refreshing
            self.refreshing = None
        return self.caller

    def _prepare_next(self) -> None:
        """Overlap with the client's tool: re-read the workspace for the next admission."""
        caller = self.caller
        self.refreshing = asyncio.create_task(
            self.gateway.caller(
                caller.tenant,
                self.websocket.headers.get(WORKSPACE_HEADER),
                self.websocket.headers.get(PRIORITY_HEADER),
            )
        )

    async def _history(self, previous: str | None, caller: Caller) -> tuple[Any, ...]:
        if previous is None:
            return ()
        latest = self.latest
        if latest is not None and latest.response["id"] == previous:
            return latest.messages
        found = await self.gateway.stored(caller.tenant, previous)
        if found is None:
            raise not_found_previous(previous)
        return found.messages

    async def run_turn(self, raw: dict[str, Any]) -> None:
        gateway = self.gateway
        try:
            await self._settled()
            caller = await self._ready_caller()
            body = parse_responses_body(raw)
            history = await self._history(body.previous_response_id, caller)
            turn = gateway.new_turn(body)
            self.latest = None
            async for event in gateway.respond(
                caller, body, history, turn, settle_later=True, upstream=self.upstream
            ):
                await self.send(event)
        except (WireError, MezzoError) as exc:
            self.latest = None
            await self.refuse(as_wire_error(exc))
            return
        except ClientTooSlow:
            self.latest = None
            with contextlib.suppress(Exception):
                await self.websocket.close(code=CLOSE_TOO_SLOW, reason="the client is not reading")
            return
        finally:
            self._prepare_next()
        self.settling = turn.settling
        if not turn.failed and turn.conversation is not None:
            self.latest = turn.conversation

    async def close(self) -> None:
        for task in (self.turn, self.refreshing):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await self._settled()
        for session in self.upstreams.values():
            await session.aclose()


async def serve_connection(gateway: Gateway, websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        tenant = await websocket.app.state.auth.tenant(websocket.headers.get("authorization"))
        caller = await gateway.caller(
            tenant, websocket.headers.get(WORKSPACE_HEADER), websocket.headers.get(PRIORITY_HEADER)
        )
    except (WireError, MezzoError) as exc:
        error = as_wire_error(exc)
        with contextlib.suppress(Exception):
            await websocket.send_text(json.dumps(error.event()))
            await websocket.close(code=4000 + error.status, reason=error.message[:120])
        return
    connection = Connection(gateway, websocket, caller)
    try:
        await connection.serve()
    except (WebSocketDisconnect, RuntimeError, ClientTooSlow):
        pass
    finally:
        await connection.close()
