"""SSE framing, written once: an event's seq is its id, and data over several lines stays one
message (each line its own `data:` field, as the spec reads them back)."""

from __future__ import annotations

from mezzo.protocol import Event
from mezzo.server.sse import event_frame, frame


def test_a_mezzo_event_frames_with_its_seq_as_id() -> None:
    """UTF-8 as the SSE spec streams it, encoded as the REST page and WebSocket encode it."""
    event = Event(seq=7, workspace="w", run="r", type="completed", ts=1.5, data={"k": "é"})
    assert event_frame(event) == (
        b'id: 7\nevent: completed\ndata: {"seq":7,"workspace":"w","run":"r",'
        b'"type":"completed","ts":1.5,"data":{"k":"\xc3\xa9"}}\n\n'
    )


def test_a_lone_surrogate_is_framed_as_u_fffd() -> None:
    event = Event(seq=1, workspace="w", run=None, type="cancelled", ts=1.0, data={"r": "\ud800"})
    assert event_frame(event).endswith(b'"data":{"r":"\xef\xbf\xbd"}}\n\n')


def test_data_over_several_lines_is_one_message() -> None:
    assert frame("a\nb", event="x") == b"event: x\ndata: a\ndata: b\n\n"
    assert frame("{}") == b"data: {}\n\n"
