"""RPM/TPM limits of the stub, per API key, as OpenAI reports them.

Each limit is a bucket holding up to `limit` units that refills continuously at `limit` per
minute; a request takes 1 request unit and its total tokens (input + output, which the stub
knows before it answers). A request that does not fit is refused whole and takes nothing.
Headers follow OpenAI: `x-ratelimit-limit-*`, `x-ratelimit-remaining-*` and
`x-ratelimit-reset-*` (time until the bucket is full again, as a Go duration such as `1m2.5s`
or `120ms`), and on a 429 `retry-after` (whole seconds, rounded up) and `retry-after-ms`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


def format_duration(seconds: float) -> str:
    """A Go-style duration, as in OpenAI's `x-ratelimit-reset-*` headers."""
    millis = max(0, math.ceil(seconds * 1000))
    if millis < 1000:
        return f"{millis}ms"
    minutes, millis = divmod(millis, 60_000)
    secs = f"{millis / 1000:.3f}".rstrip("0").rstrip(".")
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


@dataclass(slots=True)
class Bucket:
    limit: int
    level: float
    updated: float

    def refill(self, now: float) -> None:
        rate = self.limit / 60.0
        self.level = min(float(self.limit), self.level + (now - self.updated) * rate)
        self.updated = now

    def wait_for(self, amount: int) -> float:
        """Seconds until `amount` fits (0 when it fits now, inf when it never can)."""
        if amount > self.limit:
            return math.inf
        return max(0.0, (amount - self.level) / (self.limit / 60.0))

    def seconds_to_full(self) -> float:
        return (self.limit - self.level) / (self.limit / 60.0)


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    # Seconds to wait before retrying, when refused; inf when the request can never fit.
    retry_after: float
    # Which limit refused it: "requests" or "tokens".
    limit_type: str
    headers: dict[str, str] = field(default_factory=dict)


class RateLimits:
    def __init__(self, rpm: int | None, tpm: int | None) -> None:
        self.rpm = rpm
        self.tpm = tpm
        self._buckets: dict[tuple[str, str], Bucket] = {}

    def _bucket(self, key: str, kind: str, limit: int, now: float) -> Bucket:
        bucket = self._buckets.get((key, kind))
        if bucket is None:
            bucket = self._buckets[(key, kind)] = Bucket(limit, float(limit), now)
        bucket.refill(now)
        return bucket

    def _active(self, key: str, now: float) -> list[tuple[str, Bucket]]:
        active = []
        if self.rpm is not None:
            active.append(("requests", self._bucket(key, "requests", self.rpm, now)))
        if self.tpm is not None:
            active.append(("tokens", self._bucket(key, "tokens", self.tpm, now)))
        return active

    def acquire(self, key: str, tokens: int, now: float) -> Decision:
        active = self._active(key, now)
        cost = {"requests": 1, "tokens": tokens}
        waits = [(bucket.wait_for(cost[kind]), kind) for kind, bucket in active]
        refused = max(waits, default=(0.0, ""))
        if refused[0] > 1e-6:
            return Decision(False, refused[0], refused[1], _headers(active))
        for kind, bucket in active:
            bucket.level -= cost[kind]
        return Decision(True, 0.0, "", _headers(active))

    def peek(self, key: str, now: float) -> dict[str, str]:
        """The headers for a response that takes nothing (e.g. an injected fault)."""
        return _headers(self._active(key, now))


def _headers(active: list[tuple[str, Bucket]]) -> dict[str, str]:
    headers = {}
    for kind, bucket in active:
        headers[f"x-ratelimit-limit-{kind}"] = str(bucket.limit)
        headers[f"x-ratelimit-remaining-{kind}"] = str(max(0, math.floor(bucket.level)))
        headers[f"x-ratelimit-reset-{kind}"] = format_duration(bucket.seconds_to_full())
    return headers
