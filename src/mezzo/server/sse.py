"""Server-sent events, written once: the framing (the events API and the gateway both frame
with `frame`) and a workspace's event stream from its dispatcher (`mezzo.server.fanout`), with
heartbeats."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from mezzo.protocol import Event
from mezzo.server.encoding import event_json
from mezzo.server.fanout import Encoded, Fanout, behind_reason
from mezzo.workspaces import WorkspaceRecord

MEDIA_TYPE = "text/event-stream"
HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
HEARTBEAT_S = 15.0


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


def encoded_frame(item: Encoded) -> bytes:
    """`event_frame` of an event the fan-out encoded already."""
    return frame(item.text, event=item.type, id=item.seq)


async def event_stream(
    fanout: Fanout,
    record: WorkspaceRecord,
    after: int,
    types: Sequence[str] | None,
    heartbeat_s: float = HEARTBEAT_S,
) -> AsyncIterator[bytes]:
    """The workspace's events after `after` as SSE, from its dispatcher, with a comment every
    `heartbeat_s` while none comes. A subscriber cut off for reading too slowly gets a comment
    saying so and the stream ends; its client reconnects with `Last-Event-ID`."""
    yield comment("mezzo event stream")
    async with fanout.subscribe(record, after, types) as subscription:
        async for replayed in subscription.replay():
            yield encoded_frame(replayed)
        while not subscription.ended:
            item = subscription.take()
            if item is not None:
                yield encoded_frame(item)
            elif not await subscription.wait(heartbeat_s):
                yield comment("keep-alive")
        if subscription.behind:
            yield comment(behind_reason(subscription.sent))
