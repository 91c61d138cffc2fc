"""The errors mezzo raises on purpose, one tree rooted at `MezzoError`.

Every error a caller can cause, or must handle, is a `MezzoError` with a `message` (one line,
safe to show) and an optional `detail` (data that helps, e.g. the pending tool calls). The SDK
raises the same classes whether it talks HTTP or runs embedded: over HTTP it turns the answer's
status back into the category below.

    MezzoError
    ├── BadRequest                  the request is wrong as sent                      400
    │   ├── InvalidConfiguration      a workspace configuration mezzo cannot serve
    │   ├── UnknownEventType          an event type filter names no event type
    │   └── InvalidCursor             an events cursor (`after`) outside the log
    ├── Unauthorized                no API key, or one mezzo does not know            401
    ├── Forbidden                   a key without the right (not an admin's)          403
    ├── NotFound                    nothing by that id for this tenant                404
    │   ├── WorkspaceNotFound
    │   ├── RunNotFound
    │   ├── WorkspaceFileNotFound
    │   └── WorkerNotFound
    ├── Conflict                    the request contradicts the current state         409
    │   ├── WorkspaceConflict         the id is taken, or exists with another config
    │   ├── RunConflict               the run's state does not allow it (now)
    │   ├── IdempotencyConflict       an Idempotency-Key reused with another body
    │   └── NothingToResume           a top-up while no run waits for budget
    ├── PayloadTooLarge             over a size limit                                 413
    ├── Unprocessable               well-formed but unusable (a file's format)        422
    ├── BudgetExhausted             the workspace's budget is spent                   429
    ├── TooManyRequests             over a rate limit                                 429
    ├── Unavailable                 mezzo cannot serve now (not started)              503
    └── ConfigurationError          the operator's settings are wrong (a store URL)   500

The statuses on the right are the server's (`mezzo.server.status`, the one table from errors
to HTTP, which also maps what other layers raise: the store's `StoreUnavailable` → 503, the
router's `RoutingError` → 400). `error.status` reads that table, or, for an error the SDK built
from an HTTP answer, the status that answer had.

Outside this tree, on purpose: `Cancelled` below (control flow: the work in hand was
cancelled, whoever asked), the store's own `StoreError` family (`VersionConflict`, `LeaseLost`:
control flow between the engine and the store, never shown to a caller) and the errors of the
layers under the service (`FileError`, `ProviderError`, `ToolError`, …), which the service
turns into the errors above where a caller meets them.
"""

from __future__ import annotations

from typing import Any


class MezzoError(Exception):
    def __init__(self, message: str, detail: Any = None, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail
        self._status = status

    @property
    def status(self) -> int:
        """The HTTP status of this error: as received (SDK) or as the server answers it."""
        if self._status is not None:
            return self._status
        from mezzo.server.status import status_for  # the table; imported only when asked

        return status_for(self) or 500

    @status.setter
    def status(self, value: int) -> None:
        self._status = value


class BadRequest(MezzoError):
    pass


class InvalidConfiguration(BadRequest):
    pass


class UnknownEventType(BadRequest):
    pass


class InvalidCursor(BadRequest):
    pass


class Unauthorized(MezzoError):
    pass


class Forbidden(MezzoError):
    pass


class NotFound(MezzoError):
    pass


class WorkspaceNotFound(NotFound):
    pass


class RunNotFound(NotFound):
    pass


class WorkspaceFileNotFound(NotFound):
    pass


class WorkerNotFound(NotFound):
    pass


class Conflict(MezzoError):
    pass


class WorkspaceConflict(Conflict):
    pass


class RunConflict(Conflict):
    pass


class IdempotencyConflict(Conflict):
    pass


class NothingToResume(Conflict):
    pass


class PayloadTooLarge(MezzoError):
    pass


class Unprocessable(MezzoError):
    pass


class BudgetExhausted(MezzoError):
    pass


class TooManyRequests(MezzoError):
    pass


class Unavailable(MezzoError):
    pass


class ConfigurationError(MezzoError):
    pass


class Cancelled(Exception):
    """The work in hand was cancelled; stop it. One class for every place that stops work on
    request: a run's model call when a `cancelled` event arrives (`output_tokens` streamed
    before it stopped are charged), a gateway turn cancelled by
    `POST /v1/responses/{id}/cancel`, the local model's generation when its consumer is gone.

    Control flow, not an error a caller sees: it derives from `Exception`, not `MezzoError`,
    and never from asyncio's `CancelledError` (a task being cancelled is another matter).
    """

    def __init__(self, output_tokens: int = 0) -> None:
        super().__init__("cancelled")
        self.output_tokens = output_tokens
