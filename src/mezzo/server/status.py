"""Errors to HTTP, in one place: the one table from exceptions to statuses, and how an error is
rendered. Every route (FastAPI's exception handlers and the hot routes), the WebSocket close
codes and the gateway map an exception through `status_for`, so the same error has the same
status everywhere; mezzo's own routes answer with `ErrorBody` (`{"error", "detail"}`), the
gateway with OpenAI's shape around the same status.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from mezzo import errors
from mezzo.governor.router import RoutingError
from mezzo.protocol import ErrorBody
from mezzo.server.encoding import model_json
from mezzo.store.base import StoreUnavailable

# The most specific class of an exception that is listed here decides (see `status_for`).
STATUS: dict[type[BaseException], int] = {
    errors.MezzoError: 400,
    errors.BadRequest: 400,
    errors.Unauthorized: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.PayloadTooLarge: 413,
    errors.Unprocessable: 422,
    errors.BudgetExhausted: 429,
    errors.TooManyRequests: 429,
    errors.ConfigurationError: 500,
    errors.Unavailable: 503,
    RoutingError: 400,
    StoreUnavailable: 503,
}
# Statuses that are no fault of the request: the client may try again after this many seconds.
RETRY_AFTER_S = {503: 1}
JSON = "application/json"


def status_for(exc: BaseException) -> int | None:
    """The HTTP status `exc` answers with; None for an error the server did not expect (a 500)."""
    for cls in type(exc).__mro__:
        status = STATUS.get(cls)
        if status is not None:
            return status
    return None


def message_for(exc: BaseException) -> str:
    if isinstance(exc, errors.MezzoError):
        return exc.message
    if isinstance(exc, StoreUnavailable):
        return f"the store is unavailable: {exc}"
    return str(exc)


def error_body(message: str, detail: object = None) -> bytes:
    return model_json(ErrorBody(error=message, detail=detail))


def rendered(exc: BaseException) -> tuple[int, bytes, list[tuple[bytes, bytes]]] | None:
    """Status, body and extra headers for an expected error; None for an unexpected one."""
    status = status_for(exc)
    if status is None:
        return None
    detail = exc.detail if isinstance(exc, errors.MezzoError) else None
    headers = []
    if status in RETRY_AFTER_S:
        headers.append((b"retry-after", str(RETRY_AFTER_S[status]).encode()))
    return status, error_body(message_for(exc), detail), headers


def error_response(exc: BaseException) -> Response:
    """The response for an expected error (see `rendered`); raises `exc` for an unexpected one."""
    answer = rendered(exc)
    if answer is None:
        raise exc
    code, body, headers = answer
    response = Response(body, code, media_type=JSON)
    response.raw_headers.extend(headers)
    return response


# What any request under /v1 may be answered with before or beside its route: a body that is
# not JSON, nests too deeply or is too large; no valid API key; a path or body that does not
# validate; over the request rate limit; headers too large; the store unavailable.
BEFORE_ANY_ROUTE = (400, 401, 413, 422, 429, 431, 503)


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for a route's error statuses and those of `BEFORE_ANY_ROUTE`, each
    answered with `ErrorBody`."""
    return {status: {"model": ErrorBody} for status in sorted({*BEFORE_ANY_ROUTE, *statuses})}


def links(parameter: str, source: str, *operations: tuple[str, str]) -> dict[str, Any]:
    """OpenAPI links from a response to the operations (path, method) it names `parameter`
    for, with the value at `source` (a JSON pointer into the body): how a client (and a fuzzer)
    follows a created workspace or run."""
    return {
        f"{method}{path}".replace("/", "_").replace("{", "").replace("}", ""): {
            "operationRef": "#/paths/" + path.replace("~", "~0").replace("/", "~1") + f"/{method}",
            "parameters": {parameter: f"$response.body#{source}"},
        }
        for path, method in operations
    }


def close_code(exc: BaseException) -> int:
    """The WebSocket close code for an error met before a subscription starts: 4000 + status."""
    return 4000 + (status_for(exc) or 500)
