"""Outcomes of the governor and the provider as the OpenAI errors a client expects."""

from __future__ import annotations

from mezzo.errors import MezzoError
from mezzo.governor.governor import Exhausted, Wait
from mezzo.governor.router import RoutingError
from mezzo.providers.base import ProviderError
from mezzo.providers.openai_wire.errors import WireError
from mezzo.store.base import StoreUnavailable

__all__ = [
    "WireError",
    "as_wire_error",
    "exhausted",
    "no_previous_response",
    "no_response",
    "upstream_failed",
    "waited_too_long",
]


def exhausted(refusal: Exhausted) -> WireError:
    return WireError(
        429,
        refusal.message,
        "insufficient_quota",
        None,
        "insufficient_quota",
        {"x-should-retry": "false"},
    )


def waited_too_long(wait: Wait) -> WireError:
    if wait.reason == "budget":
        message = (
            "the workspace's budget is held by other calls in flight for longer than this "
            "request may wait; retry shortly"
        )
    else:
        message = f"{wait.event.data.get('key')} rate limit: retry in {wait.seconds:.1f} s"
    return WireError(
        429,
        message,
        "rate_limit_exceeded",
        None,
        "requests",
        {"retry-after": f"{max(1, round(wait.seconds))}"},
    )


def upstream_failed(error: ProviderError) -> WireError:
    status = 429 if error.status == 429 else 502
    return WireError(
        status, f"upstream model error: {error}", "upstream_error", kind="server_error"
    )


def no_previous_response(response_id: str) -> WireError:
    return WireError(
        400,
        f"Previous response with id '{response_id}' not found.",
        "previous_response_not_found",
        "previous_response_id",
    )


def no_response(response_id: str) -> WireError:
    return WireError(
        404, f"No response found with id '{response_id}'.", "response_not_found", "response_id"
    )


def not_started() -> WireError:
    return WireError(503, "mezzo is not started", "unavailable", kind="server_error")


def as_wire_error(exc: Exception) -> WireError:
    """A refusal raised anywhere below the routes, in OpenAI's shape (re-raises the rest)."""
    if isinstance(exc, WireError):
        return exc
    if isinstance(exc, StoreUnavailable):
        return WireError(
            503,
            f"the store is unavailable: {exc}",
            "store_unavailable",
            kind="server_error",
            headers={"retry-after": "1"},
        )
    if isinstance(exc, RoutingError):
        return WireError(400, str(exc), "invalid_route")
    if isinstance(exc, MezzoError):
        code = {401: "invalid_api_key", 404: "not_found", 409: "conflict"}.get(
            exc.status, "invalid_request"
        )
        kind = "authentication_error" if exc.status == 401 else "invalid_request_error"
        return WireError(exc.status, exc.message, code, kind=kind)
    raise exc
