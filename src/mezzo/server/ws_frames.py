"""WebSocket frames written straight to a connection's transport, for the event fan-out.

Through ASGI, each message to each socket costs a `send` coroutine through every middleware and
uvicorn's protocol, which encodes the text to UTF-8 and frames it again for every socket: about
50 us of Python per socket per event, half a second for 10,000 subscribers. The fan-out
(`mezzo.server.fanout`) encodes and frames each event once; this module lets it write those
bytes to every socket whose transport takes them now, with no coroutine in between.

`FramedWebSocketProtocol` is uvicorn's own WebSocket protocol (the sans-I/O `websockets` one)
plus an ASGI extension in the connection's scope, `mezzo.frames`: a `FrameSink` whose `write`
puts a whole frame on the transport, or refuses (False) when the transport is paused (the client
reads slower than we write), the connection is closing, or it has closed. A route that finds no
extension (another server, a test client) sends through ASGI as usual.

Frames go out uncompressed (RSV1 clear), also on a connection that negotiated
permessage-deflate: RFC 7692 lets a sender leave any message uncompressed, and the compression
context is untouched by it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request

EXTENSION = "mezzo.frames"


def text_frame(payload: bytes) -> bytes:
    """One unfragmented, unmasked text frame (server to client) carrying `payload` (UTF-8)."""
    size = len(payload)
    if size < 126:
        header = bytes((0x81, size))
    elif size < 1 << 16:
        header = bytes((0x81, 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + size.to_bytes(8, "big")
    return header + payload


class FrameSink:
    """Whole frames onto one connection's transport, when it takes them now."""

    __slots__ = ("_protocol",)

    def __init__(self, protocol: WebSocketsSansIOProtocol) -> None:
        self._protocol = protocol

    def write(self, frame: bytes) -> bool:
        protocol = self._protocol
        if (
            protocol.close_sent
            or protocol.disconnected
            or not protocol.writable.is_set()
            or protocol.transport.is_closing()
        ):
            return False
        protocol.transport.write(frame)
        return True


# What `FrameSink` reads of uvicorn's protocol (uvicorn 0.50–0.55): where a later uvicorn lacks
# one, connections get no sink and the fan-out sends through ASGI, slower but correct.
_STATE = ("close_sent", "disconnected", "writable", "transport")


class FramedWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol, offering a `FrameSink` as the `mezzo.frames` extension."""

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        if all(hasattr(self, name) for name in _STATE):
            extensions: dict[str, Any] = self.scope.setdefault("extensions", {})
            extensions[EXTENSION] = FrameSink(self)


def frame_sink(scope: Mapping[str, Any]) -> FrameSink | None:
    sink = (scope.get("extensions") or {}).get(EXTENSION)
    return sink if isinstance(sink, FrameSink) else None
