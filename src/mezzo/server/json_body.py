"""JSON request bodies: how deeply they may nest, checked once in front of every route.

A parser or validator that recurses (the standard library's, a gateway's own walk over messages)
fails with `RecursionError` somewhere between a few hundred and a few thousand levels, which
surfaces as a 500, and a body that passes may still break a writer later. `JsonDepthLimit`
refuses any request body nesting deeper than `mezzo.bounds.MAX_JSON_DEPTH` with a 400, before
any route (the hot submit route and the gateway's included) reads it; `parse_json` does the same
for JSON that arrives another way (a WebSocket message) and parses it.

The depth is measured on the bytes, without parsing: escapes are taken out, everything but
quotes and brackets is dropped, and what is left must match a regular expression of strings and
balanced brackets at most `limit` deep (a bracket inside a string does not nest), which RE2
matches in linear time: a mebibyte body in 2 to 4 ms, a fifth of parsing it. A body with at
most `limit` opening brackets cannot nest deeper, so almost every body passes after two counts.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

import re2
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mezzo.bounds import MAX_JSON_DEPTH
from mezzo.errors import BadRequest
from mezzo.server.status import error_body

_NOT_STRUCTURE = bytes(range(256)).translate(None, b'[]{}"')  # every byte but these
_PAIRS = bytes.maketrans(b"[]{}", b"()()")
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def nests_deeper_than(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the JSON text `body` nests arrays and objects more than `limit` deep, or has
    brackets that do not balance (so is no JSON)."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    if b"\\" in body:  # escapes pair left to right: \\ first, then \" (no longer a quote)
        body = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    structure = body.translate(_PAIRS, _NOT_STRUCTURE)  # strings' quotes, brackets as ( )
    return _balanced(limit).fullmatch(structure) is None


@functools.lru_cache(maxsize=8)
def _balanced(limit: int) -> Any:
    """Strings (`"..."`, any brackets inside) and brackets (as `(` and `)`) that balance,
    nested at most `limit` deep."""
    pattern = r'(?:"[^"]*")*'
    for _ in range(limit):
        pattern = rf'(?:"[^"]*"|\({pattern}\))*'
    options = re2.Options()
    options.max_mem = 64 << 20
    return re2.compile(pattern.encode(), options)


def too_deep(limit: int = MAX_JSON_DEPTH) -> BadRequest:
    return BadRequest(
        f"JSON nests deeper than {limit} levels of arrays and objects (or its brackets do not "
        "balance)"
    )


def parse_json(body: bytes | str, limit: int = MAX_JSON_DEPTH) -> Any:
    """`body` parsed, or BadRequest: nested more than `limit` deep, or not JSON."""
    raw = body.encode() if isinstance(body, str) else body
    if nests_deeper_than(raw, limit):
        raise too_deep(limit)
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None


class JsonDepthLimit:
    """Refuses a request body that nests deeper than `limit` with 400, for every route but the
    ones ending in `exempt_suffixes` (uploads, whose bodies are files). Reads the body whole: it
    sits behind the body size limit."""

    def __init__(
        self,
        app: ASGIApp,
        limit: int = MAX_JSON_DEPTH,
        exempt_suffixes: tuple[str, ...] = (),
        refusal: Callable[[str, str], bytes] | None = None,
    ) -> None:
        self.app = app
        self.limit = limit
        self.exempt_suffixes = exempt_suffixes
        # The 400's body for a path and a message: mezzo's error shape unless told otherwise.
        self.refusal = refusal or (lambda _path, message: error_body(message))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in BODY_METHODS
            or scope["path"].endswith(self.exempt_suffixes)
        ):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left
                await self.app(scope, _replay([message], receive), send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if nests_deeper_than(body, self.limit):
            await _refuse(send, self.refusal(scope["path"], too_deep(self.limit).message))
            return
        replayed = {"type": "http.request", "body": body, "more_body": False}
        await self.app(scope, _replay([replayed], receive), send)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay


async def _refuse(send: Send, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 400,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
