"""Server-sent events, written once: the framing (the events API and the gateway both frame
with `frame`) and a stream of mezzo events with a bounded buffer and heartbeats."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from mezzo.protocol import Event
from mezzo.server.encoding import event_json

MEDIA_TYPE = "text/event-stream"
HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
HEARTBEAT_S = 15.0
# A slow reader holds at most this many events here; the rest stay in the store.
BUFFER = 32


def frame(data: str, *, event: str | None = None, id: int | None = None) -> bytes:
    """One SSE message; `data` may span lines (each becomes a `data:` line)."""
    lines = [] if id is None else [f"id: {id}"]
    if event is not None:
        lines.append(f"event: {event}")
    lines.extend(f"data: {line}" for line in data.split("\n"))
    return ("\n".join(lines) + "\n\n").encode()


def comment(text: str) -> bytes:
    return f": {text}\n\n".encode()


def event_frame(event: Event) -> bytes:
    """A mezzo event: its seq is the SSE id, so a reconnect resumes with `Last-Event-ID`."""
    return frame(event_json(event), event=event.type, id=event.seq)


async def event_stream(
    events: AsyncIterator[Event], heartbeat_s: float = HEARTBEAT_S
) -> AsyncIterator[bytes]:
    """`events` as SSE, with a comment every `heartbeat_s` while none comes."""
    queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=BUFFER)

    async def pump() -> None:
        async for event in events:
            await queue.put(event)

    task = asyncio.create_task(pump())
    try:
        yield comment("mezzo event stream")
        while True:
            try:
                event = await asyncio.wait_for(queue.get(), heartbeat_s)
            except TimeoutError:
                if task.done():
                    break
                yield comment("keep-alive")
                continue
            yield event_frame(event)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
