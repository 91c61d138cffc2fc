"""Errors to HTTP, in one place: every route, the hot routes and the WebSocket close codes render
an exception through this module, so the same error has the same status and body everywhere.

The body is mezzo's `ErrorBody`: `{"error": message, "detail": ...}`.
"""

from __future__ import annotations

from starlette.responses import Response

from mezzo.errors import MezzoError
from mezzo.protocol import ErrorBody
from mezzo.store.base import StoreUnavailable

JSON_HEADERS = [(b"content-type", b"application/json")]
# Errors that are no fault of the request: the client may try again after this many seconds.
RETRY_AFTER_S = {503: 1}


def status_for(exc: BaseException) -> int | None:
    """The HTTP status `exc` answers with; None for an error the server did not expect (a 500)."""
    if isinstance(exc, MezzoError):
        return exc.status
    if isinstance(exc, StoreUnavailable):
        return 503
    return None


def message_for(exc: BaseException) -> str:
    if isinstance(exc, MezzoError):
        return exc.message
    if isinstance(exc, StoreUnavailable):
        return f"the store is unavailable: {exc}"
    return str(exc)


def error_body(message: str, detail: object = None) -> bytes:
    return ErrorBody(error=message, detail=detail).model_dump_json().encode()


def rendered(exc: BaseException) -> tuple[int, bytes, list[tuple[bytes, bytes]]] | None:
    """Status, body and extra headers for an expected error; None for an unexpected one."""
    status = status_for(exc)
    if status is None:
        return None
    detail = exc.detail if isinstance(exc, MezzoError) else None
    headers = []
    if status in RETRY_AFTER_S:
        headers.append((b"retry-after", str(RETRY_AFTER_S[status]).encode()))
    return status, error_body(message_for(exc), detail), headers


def close_code(exc: BaseException) -> int:
    """The WebSocket close code for an error met before a subscription starts: 4000 + status."""
    return 4000 + (status_for(exc) or 500)


def error_response(exc: BaseException) -> Response:
    """The response for an expected error (see `rendered`); raises `exc` for an unexpected one."""
    answer = rendered(exc)
    if answer is None:
        raise exc
    code, body, headers = answer
    response = Response(body, code, media_type="application/json")
    response.raw_headers.extend(headers)
    return response
