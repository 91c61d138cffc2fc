"""Errors a user can cause. The server maps each to its HTTP status; the SDK raises them as is."""

from __future__ import annotations

from typing import Any


class MezzoError(Exception):
    status = 400

    def __init__(self, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class BadRequest(MezzoError):
    status = 400


class Unauthorized(MezzoError):
    status = 401


class Forbidden(MezzoError):
    status = 403


class NotFound(MezzoError):
    status = 404


class Conflict(MezzoError):
    status = 409


class PayloadTooLarge(MezzoError):
    status = 413


class Unprocessable(MezzoError):
    status = 422


class TooManyRequests(MezzoError):
    status = 429


class Unavailable(MezzoError):
    status = 503
