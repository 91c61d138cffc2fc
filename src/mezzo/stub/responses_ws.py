"""WebSocket mode of the stub's Responses API (`ws://.../v1/responses`), as OpenAI serves it.

The client sends `{"type": "response.create", ...}` with the fields of an HTTP body
(streaming implied) and receives the same events as the HTTP stream, one JSON text frame each.
One response is in flight per connection; the connection keeps its most recent response, so
the next turn can send only new items plus `previous_response_id` (even with `store: false`);
a failed turn forgets it. `generate: false` warms a conversation up without generating.
Errors are `{"type": "error", "status": ..., "error": {"type", "code", "message", "param",
"headers"}}` events and leave the connection open.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import TYPE_CHECKING, Any

from starlette.websockets import WebSocket

from mezzo.stub import responses_wire
from mezzo.stub.answer import Answer, transcript_after
from mezzo.stub.errors import Rejection
from mezzo.stub.transcript import Item

if TYPE_CHECKING:
    from mezzo.stub.stub_llm import Stub

PATH = "ws:/v1/responses"


def error_event(rejection: Rejection) -> dict[str, Any]:
    error = {**rejection.body["error"], "headers": rejection.headers}
    return {"type": "error", "status": rejection.status, "error": error}


def _bearer(websocket: WebSocket) -> str:
    scheme, _, token = websocket.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


class Connection:
    """One client's socket: its most recent response and the turn in flight."""

    def __init__(self, stub: Stub, websocket: WebSocket) -> None:
        self.stub = stub
        self.websocket = websocket
        self.key = _bearer(websocket)
        self.opened = time.monotonic()
        self.latest: dict[str, list[Item]] = {}
        self.turn: asyncio.Task[None] | None = None

    async def send(self, data: dict[str, Any]) -> None:
        await self.websocket.send_text(json.dumps(data, separators=(",", ":")))

    async def refuse(self, status: int, message: str, code: str, param: str | None = None) -> None:
        await self.send(error_event(Rejection(status, message, code, param=param)))

    async def serve(self) -> None:
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            try:
                event = json.loads(message.get("text") or message.get("bytes") or b"")
            except (json.JSONDecodeError, UnicodeDecodeError):
                await self.refuse(400, "The message is not valid JSON.", "invalid_json")
                continue
            kind = event.get("type") if isinstance(event, dict) else None
            if kind != "response.create":
                problem = f"Unknown event type {kind!r}; expected 'response.create'."
                await self.refuse(400, problem, "unknown_event_type", "type")
                continue
            if self.turn is not None and not self.turn.done():
                problem = "A response is already in progress on this connection."
                await self.refuse(400, problem, "response_already_in_progress")
                continue
            if time.monotonic() - self.opened > self.stub.state.config.ws_max_connection_s:
                problem = "This connection reached its time limit; open a new one."
                await self.refuse(400, problem, "websocket_connection_limit_reached")
                await self.websocket.close(code=1000)
                return
            body = {key: value for key, value in event.items() if key != "type"}
            self.turn = asyncio.create_task(self.run_turn(body))

    async def run_turn(self, body: dict[str, Any]) -> None:
        stub = self.stub
        started = time.monotonic()
        entry = stub.open_entry(PATH, self.key)
        body["stream"] = True
        status = 200
        try:
            stub.check_key(self.key)
            answer, _ = stub.prepare(
                stub.validate_body(body), "responses", self.key, entry, self.latest
            )
        except Rejection as rejection:
            status = rejection.status
            self.latest = {}
            await self.send(error_event(rejection))
        else:
            await self._stream(answer, started, entry)
            self.latest = {} if answer.fails_midway else {answer.id: transcript_after(answer)}
        finally:
            stub.close_entry(entry, status)

    async def _stream(self, answer: Answer, started: float, entry: dict[str, Any]) -> None:
        state = self.stub.state
        state.stats.streams_open += 1
        entry["outcome"] = "streaming"
        try:
            async for batch in self.stub.paced(list(responses_wire.stream(answer)), started):
                for frame in batch:
                    await self.send(frame.data)
        except BaseException:
            state.stats.streams_disconnected += 1
            entry["outcome"] = "disconnected"
            raise
        else:
            state.stats.streams_completed += 1
            state.stats.completed += 1
            entry["outcome"] = "completed"
        finally:
            state.stats.streams_open -= 1

    async def close(self) -> None:
        if self.turn is None:
            return
        self.turn.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.turn


async def serve_websocket(stub: Stub, websocket: WebSocket) -> None:
    stats = stub.state.stats
    await websocket.accept()
    stats.ws_connections += 1
    stats.ws_open += 1
    connection = Connection(stub, websocket)
    try:
        await connection.serve()
    finally:
        await connection.close()
        stub.state.stats.ws_open -= 1
