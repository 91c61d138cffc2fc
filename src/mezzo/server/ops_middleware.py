"""ASGI middleware for operations: counts requests and open subscriptions, and applies the
request rate limit (GCRA in the store, shared by every API node) with 429 and `retry-after`.

The limit is per API key once the key is verified, and per client address until then: a request
with no key, a made-up key or a revoked one counts against its address, so made-up keys neither
escape the limit nor each get a limiter entry of their own. (Entries expire in the store once
they no longer limit anything.)

Every request is logged, one line at info: method, path (never the query, which may carry a
token), status, duration, tenant and request id; never a body or a key."""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import math
import os
import time
from typing import Any
from urllib.parse import parse_qs

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mezzo import keys, metrics
from mezzo.errors import MezzoError
from mezzo.logs import get_logger
from mezzo.server.auth import Authenticator, presented_key
from mezzo.service import Mezzo
from mezzo.store.base import RateLimit, StoreError

LIMITED_PREFIX = "/v1/"
MAX_HEADER_BYTES = 64 * 1024
# Where a route records the tenant it authenticated, for the request's log line.
TENANT_SCOPE_KEY = "mezzo.tenant"

log = get_logger("mezzo.http")

# A request id is unique, not secret: this process's random prefix and a counter (32 hex digits).
_ID_PREFIX = os.urandom(8).hex()
_ID_COUNTER = itertools.count()


def request_id_of(scope: Scope) -> bytes:
    """The caller's `x-request-id` (a short printable one) or a new one; logged and echoed."""
    for name, value in scope.get("headers", []):
        if name == b"x-request-id" and 0 < len(value) <= 128 and all(32 < c < 127 for c in value):
            return bytes(value)
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}".encode()


@functools.lru_cache(maxsize=256)
def _requests_counter(method: str, status_class: str) -> Any:
    return metrics.http_requests.labels(method, status_class)


def _count(method: str, status: int) -> None:
    _requests_counter(method, f"{status // 100}xx").inc()


def presented(scope: Scope) -> tuple[str | None, str | None]:
    """The `authorization` header and the `token` query parameter a request carries."""
    authorization = None
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            authorization = value.decode("latin-1")
            break
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    return authorization, (query.get("token") or [None])[0]


def tenant_of(scope: Scope, auth: Authenticator | None) -> str | None:
    """The tenant a route recorded, else the one this process knows for the presented key."""
    recorded = scope.get(TENANT_SCOPE_KEY)
    if recorded is not None:
        return str(recorded)
    return auth.known(*presented(scope)) if auth is not None else None


def address_of(scope: Scope) -> str:
    client = scope.get("client")
    return f"addr:{client[0] if client else 'unknown'}"


async def client_key(scope: Scope, auth: Authenticator | None) -> str:
    """Whom a request counts against: its API key once `auth` verifies it (a hash of the key),
    else its client's address (no key, a key that is not valid, or no keys configured)."""
    authorization, token = presented(scope)
    if auth is None or not (authorization or token) or not await auth.required():
        return address_of(scope)
    try:
        await auth.principal(authorization, token)
    except MezzoError:  # no such key, or not a bearer key: unverified
        return address_of(scope)
    key = presented_key(authorization, token)
    return "key:" + hashlib.sha256(key.encode()).hexdigest()[:32]


class OpsMiddleware:
    def __init__(self, app: ASGIApp, mezzo: Mezzo, state: Any = None) -> None:
        self.app = app
        self.mezzo = mezzo
        self.state = state  # the FastAPI app's state: `auth` appears there at startup

    def _log(self, scope: Scope, status: int, started: float, request_id: bytes) -> None:
        log.info(
            "request",
            method=scope.get("method", "WEBSOCKET"),
            path=scope.get("path", ""),
            status=status,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
            tenant=tenant_of(scope, getattr(self.state, "auth", None)),
            request_id=request_id.decode(),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = request_id_of(scope)
        if sum(len(k) + len(v) for k, v in scope.get("headers", [])) > MAX_HEADER_BYTES:
            _count(scope["method"], 431)
            self._log(scope, 431, started, request_id)
            await self._answer(send, 431, f"request headers exceed {MAX_HEADER_BYTES} bytes")
            return
        wait = await self._rate_limited(scope)
        if wait > 0:
            _count(scope["method"], 429)
            self._log(scope, 429, started, request_id)
            await self._refuse(send, wait)
            return
        sse = scope["path"].endswith("/events") and any(
            name == b"accept" and b"text/event-stream" in value
            for name, value in scope.get("headers", [])
        )
        status = 0
        logged = False

        async def counting_send(message: Message) -> None:
            nonlocal status, logged
            if message["type"] == "http.response.start":
                status = int(message["status"])
                if sse and status == 200:
                    metrics.subscribers.labels("sse").inc()
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id)]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                # Logged before the last bytes leave: the line exists once the client has its
                # answer.
                logged = True
                self._log(scope, status, started, request_id)
            await send(message)

        bound = structlog.contextvars.bind_contextvars(request_id=request_id.decode())
        try:
            await self.app(scope, receive, counting_send)
        finally:
            structlog.contextvars.reset_contextvars(**bound)
            if sse and status == 200:
                metrics.subscribers.labels("sse").dec()
            _count(scope["method"], status)
            if not logged:  # the answer never finished (a client gone, an error)
                self._log(scope, status, started, request_id)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A WebSocket is logged when it ends: 101 when it was accepted, else the close."""
        started = time.perf_counter()
        request_id = request_id_of(scope)
        status = 0

        async def noting_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "websocket.accept":
                status = 101
            elif message["type"] == "websocket.close" and not status:
                status = int(message.get("code", 1000))
            await send(message)

        bound = structlog.contextvars.bind_contextvars(request_id=request_id.decode())
        try:
            if scope["path"].endswith("/events"):
                with metrics.subscribers.labels("websocket").track_inprogress():
                    await self.app(scope, receive, noting_send)
            else:
                await self.app(scope, receive, noting_send)
        finally:
            structlog.contextvars.reset_contextvars(**bound)
            self._log(scope, status, started, request_id)

    async def _rate_limited(self, scope: Scope) -> float:
        settings = self.mezzo.settings
        if settings.rate_limit_per_minute is None or not scope["path"].startswith(LIMITED_PREFIX):
            return 0.0
        limit = RateLimit(settings.rate_limit_per_minute, settings.rate_limit_burst)
        try:
            who = await client_key(scope, getattr(self.state, "auth", None))
            return await self.mezzo.store.acquire(keys.api_client_limit(who), 1, 0, (limit, None))
        except StoreError:
            return 0.0  # the route answers 503 itself if the store is down

    async def _refuse(self, send: Send, wait: float) -> None:
        metrics.requests_rate_limited.inc()
        retry_after = max(1, math.ceil(wait))
        await self._answer(
            send,
            429,
            f"too many requests for this API key or address; retry after {retry_after} s",
            [(b"retry-after", str(retry_after).encode())],
        )

    async def _answer(
        self, send: Send, status: int, error: str, headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), *(headers or [])],
            }
        )
        await send({"type": "http.response.body", "body": json.dumps({"error": error}).encode()})
