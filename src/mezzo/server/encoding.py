"""JSON out of the server that cannot fail on what the store holds.

Pydantic's encoder (the fast path, used first) refuses a lone UTF-16 surrogate, which a store
may hold from before text was checked at the edge, or from a model's output; the fallback
writes U+FFFD in its place (`mezzo.text`). Every event, page and error body the server sends is
encoded here, so a REST page, an SSE frame and a WebSocket message agree.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticSerializationError, to_json
from starlette.responses import Response

from mezzo.protocol import Event
from mezzo.text import scrubbed, utf8

JSON = "application/json"


def json_bytes(value: Any) -> bytes:
    """Plain data (dicts, lists, str, numbers) as compact UTF-8 JSON."""
    return utf8(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def model_json(model: BaseModel) -> bytes:
    try:
        return model.__pydantic_serializer__.to_json(model)
    except PydanticSerializationError:
        return to_json(scrubbed(model.model_dump()))


def event_json(event: Event) -> str:
    return model_json(event).decode()


def events_json(events: Sequence[Event]) -> bytes:
    return b"[" + b",".join(model_json(event) for event in events) + b"]"


class SafeJSONResponse(Response):
    """A JSON response of plain data whose strings may hold a lone surrogate."""

    media_type = JSON

    def render(self, content: Any) -> bytes:
        return json_bytes(content)
