"""Which Redis servers mezzo can use, and how it speaks to them.

mezzo speaks RESP2 on purpose (docs/redis.md, "Protocol"): every Redis from 5.0 on, the oldest
with Streams, understands it without a `HELLO` (6.0+), and redis-py parses its replies into the
same shapes from 5.x through the newest release. redis-py 8 otherwise asks for RESP3 and falls
back to RESP2 with a warning on each connection to a server without `HELLO`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from mezzo.store.base import StoreError

RESP_PROTOCOL = 2
MIN_SERVER_VERSION = (5, 0)
_VERSION = re.compile(r"(\d+)\.(\d+)")


class RedisConfigError(StoreError, ValueError):
    """The Redis URL or the server cannot be used (bad URL, too old a server)."""


def server_version(info: Mapping[str, Any], where: str) -> tuple[int, int]:
    """`(major, minor)` from an `INFO server` reply; `RedisConfigError` if mezzo cannot use it."""
    reported = info.get("redis_version")
    if reported is None:
        raise RedisConfigError(
            f"{where} does not say which Redis version it is (no redis_version in INFO); mezzo "
            f"needs Redis {_floor()} or later (Streams)"
        )
    match = _VERSION.match(str(reported))
    if match is None:
        raise RedisConfigError(
            f"{where} reports Redis version {str(reported)!r}, which mezzo cannot read; mezzo "
            f"needs Redis {_floor()} or later (Streams)"
        )
    version = (int(match[1]), int(match[2]))
    if version < MIN_SERVER_VERSION:
        raise RedisConfigError(
            f"Redis at {where} is version {reported}; mezzo needs {_floor()} or later (Streams)"
        )
    return version


def setup_refused(where: str, error: Exception) -> RedisConfigError:
    """A server that answered the connection setup (`CLIENT SETNAME`, `SELECT`, …) with an error."""
    return RedisConfigError(
        f"{where} refused mezzo's connection setup ({error}); mezzo needs Redis {_floor()} or "
        "later, spoken to over RESP2"
    )


def _floor() -> str:
    return ".".join(str(part) for part in MIN_SERVER_VERSION)
