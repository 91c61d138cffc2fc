"""The hottest route, `POST /v1/workspaces/{workspace}/runs`, answered as plain ASGI.

FastAPI spends more on a submit than the submit itself costs: dependency solving, header and
body validation, five middleware layers, response validation and a second encoding. A submit is
what a busy client does most, so this layer answers the common case itself — a JSON body that
`SubmitRun` accepts — with the same model, the same service call and the same error rendering
(`server/status.py`). Every other request on that path (a body that does not parse or validate,
another content type, an over-long Idempotency-Key, a workspace id outside the id alphabet, a
root path) is handed, body and all, to the
FastAPI route, which stays the one the OpenAPI schema documents and answers exactly as before.
tests/server/test_hot_routes.py sends the same requests both ways and compares the answers.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mezzo.bounds import is_id
from mezzo.protocol import RunAccepted, SubmitRun
from mezzo.server import status
from mezzo.server.auth import Authenticator
from mezzo.server.routes.runs import IDEMPOTENCY_KEY_MAX
from mezzo.service import Mezzo

SUBMIT_PATH = re.compile(r"/v1/workspaces/([^/]+)/runs")
TEXT = b"text/plain; charset=utf-8"


class HotRoutes:
    """Answers hot requests before the FastAPI app; hands it everything else."""

    def __init__(self, app: ASGIApp, mezzo: Mezzo, state: Any) -> None:
        self.app = app
        self.mezzo = mezzo
        self.state = state  # the FastAPI app's state: `auth` appears there at startup
        self.answered = 0  # requests answered here rather than by FastAPI

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            match = SUBMIT_PATH.fullmatch(scope["path"])
            auth: Authenticator | None = getattr(self.state, "auth", None)
            if match is not None and auth is not None:
                await self._submit(auth, match[1], scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _submit(
        self, auth: Authenticator, workspace: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        body = await _read_body(receive)
        if body is None:
            return  # the client left
        headers = _headers(scope, (b"content-type", b"authorization", b"idempotency-key"))
        request = _submit_run(headers.get("content-type"), body)
        idempotency_key = headers.get("idempotency-key")
        if (
            request is None
            or len(idempotency_key or "") > IDEMPOTENCY_KEY_MAX
            or not is_id(workspace)
        ):
            await self.app(scope, _replay(body, receive), send)
            return
        self.answered += 1
        try:
            tenant = await auth.tenant(headers.get("authorization"))
            accepted, _ = await self.mezzo.submit_run(tenant, workspace, request, idempotency_key)
        except Exception as exc:
            answer = status.rendered(exc)
            if answer is None:  # a bug: answer as Starlette does for any route, then raise
                await _respond(send, 500, b"Internal Server Error", [], TEXT)
                raise
            await _respond(send, *answer)
            return
        await _respond(
            send,
            202,
            RunAccepted.__pydantic_serializer__.to_json(accepted),
            [(b"location", accepted.run_url.encode("latin-1"))],
        )


def _submit_run(content_type: str | None, body: bytes) -> SubmitRun | None:
    """The request, when FastAPI would accept it as it is; None to let FastAPI answer."""
    if content_type is None or content_type.partition(";")[0].strip().lower() != "application/json":
        return None
    try:
        return SubmitRun.model_validate(json.loads(body))
    except (ValueError, ValidationError, RecursionError):
        return None


async def _read_body(receive: Receive) -> bytes | None:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _headers(scope: Scope, wanted: tuple[bytes, ...]) -> dict[str, str]:
    """The first value of each wanted header, decoded as Starlette does (latin-1)."""
    found: dict[str, str] = {}
    for name, value in scope["headers"]:
        if name in wanted:
            found.setdefault(name.decode(), value.decode("latin-1"))
    return found


def _replay(body: bytes, receive: Receive) -> Receive:
    """`receive` for the FastAPI route: the body already read, then whatever comes next."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


async def _respond(
    send: Send,
    code: int,
    body: bytes,
    headers: list[tuple[bytes, bytes]],
    content_type: bytes = b"application/json",
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": code,
            "headers": [
                (b"content-length", str(len(body)).encode()),
                (b"content-type", content_type),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
