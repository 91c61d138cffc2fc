"""Provider limits as pure logic: rate-limit headers, learned vs configured limits, the circuit
breaker, and the GCRA step the store backends execute atomically.

Nothing here does I/O or reads the clock by itself: times are passed in (`now`, seconds) or
come from an injectable `clock`.
"""

from __future__ import annotations

import math
import re
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import NamedTuple

from mezzo.providers.base import ProviderError


class LimitsError(ValueError):
    """A limit or a header value that cannot be understood."""


# ---- durations and headers

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(h|ms|us|µs|ns|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def parse_duration(text: str) -> float:
    """Seconds in an OpenAI/Go duration (`6m0s`, `1.5s`, `20ms`, `1h2m3.5s`) or a bare number."""
    value = text.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds) or seconds < 0:
            raise LimitsError(f"invalid duration {text!r}")
        return seconds
    position, total = 0, 0.0
    for match in _DURATION_PART.finditer(value):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if position == 0 or position != len(value):
        raise LimitsError(f"invalid duration {text!r}: expected e.g. 6m0s, 1.5s or 20ms")
    return total


def parse_retry_after(value: str, now: float) -> float:
    """Seconds to wait from a `retry-after` value: delay-seconds or an HTTP date (RFC 9110).

    `now` is epoch seconds, used only for the date form.
    """
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        return _seconds_until_http_date(text, now)
    if not math.isfinite(seconds) or seconds < 0:
        raise LimitsError(f"invalid retry-after {value!r}")
    return seconds


def _seconds_until_http_date(text: str, now: float) -> float:
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        when = None
    if when is None or when.tzinfo is None:
        raise LimitsError(f"invalid retry-after {text!r}: expected seconds or an HTTP date")
    return max(0.0, when.timestamp() - now)


@dataclass(frozen=True, slots=True)
class RateLimitObservation:
    """What one response said about the key's limits. Every field is optional.

    `reset_*_s` is OpenAI's "time until the limit resets to its initial state";
    `retry_after_s` is the server's demand to send nothing on this key for that long.
    """

    limit_requests: int | None = None
    limit_tokens: int | None = None
    remaining_requests: int | None = None
    remaining_tokens: int | None = None
    reset_requests_s: float | None = None
    reset_tokens_s: float | None = None
    retry_after_s: float | None = None

    def blocked_until(self, now: float) -> float | None:
        """When the key may be used again after a `retry-after`; None when not blocked."""
        return None if self.retry_after_s is None else now + self.retry_after_s


def _lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        return None
    return value if value >= 0 else None


def _duration_header(headers: Mapping[str, str], name: str) -> float | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        return parse_duration(raw)
    except LimitsError:
        return None


def _retry_after(headers: Mapping[str, str], now: float) -> float | None:
    if (raw_ms := headers.get("retry-after-ms")) is not None:
        try:
            millis = float(raw_ms)
        except ValueError:
            millis = math.nan
        if math.isfinite(millis) and millis >= 0:
            return millis / 1000.0
    if (raw := headers.get("retry-after")) is not None:
        try:
            return parse_retry_after(raw, now)
        except LimitsError:
            return None
    return None


def parse_rate_limit_headers(headers: Mapping[str, str], now: float) -> RateLimitObservation:
    """Read `x-ratelimit-*`, `retry-after-ms` and `retry-after` (names case-insensitive).

    A provider's malformed value is dropped, never raised: the response itself was fine.
    `retry-after-ms` wins over `retry-after` when both are present (it is more precise).
    `now` (epoch seconds) is only needed to turn an HTTP-date `retry-after` into a delay.
    """
    h = _lower_headers(headers)
    return RateLimitObservation(
        limit_requests=_int_header(h, "x-ratelimit-limit-requests"),
        limit_tokens=_int_header(h, "x-ratelimit-limit-tokens"),
        remaining_requests=_int_header(h, "x-ratelimit-remaining-requests"),
        remaining_tokens=_int_header(h, "x-ratelimit-remaining-tokens"),
        reset_requests_s=_duration_header(h, "x-ratelimit-reset-requests"),
        reset_tokens_s=_duration_header(h, "x-ratelimit-reset-tokens"),
        retry_after_s=_retry_after(h, now),
    )


# ---- configured and learned limits


def _check_limit(name: str, value: float | None) -> None:
    if value is not None and (not math.isfinite(value) or value <= 0):
        raise LimitsError(f"{name} must be a positive number, got {value!r}")


@dataclass(frozen=True, slots=True)
class Limits:
    """Requests and tokens per minute for one provider key and model; None is unlimited."""

    rpm: float | None = None
    tpm: float | None = None

    def __post_init__(self) -> None:
        _check_limit("rpm", self.rpm)
        _check_limit("tpm", self.tpm)

    def lower(self, other: Limits) -> Limits:
        """Each limit the stricter of the two."""
        return Limits(rpm=_min(self.rpm, other.rpm), tpm=_min(self.tpm, other.tpm))


def _min(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


DEFAULT_LEARNED_TTL_S = 600.0


@dataclass(frozen=True, slots=True)
class LearnedValue:
    value: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class LearnedLimits:
    """Limits a provider announced in `x-ratelimit-limit-*`; each expires on its own.

    OpenAI's `x-ratelimit-limit-requests/-tokens` are per-minute limits (RPM/TPM).
    """

    rpm: LearnedValue | None = None
    tpm: LearnedValue | None = None

    def learn(
        self, observation: RateLimitObservation, now: float, ttl_s: float = DEFAULT_LEARNED_TTL_S
    ) -> LearnedLimits:
        """These limits updated by one response; values it does not mention are kept."""
        learned = self
        if observation.limit_requests:
            learned = replace(learned, rpm=LearnedValue(observation.limit_requests, now + ttl_s))
        if observation.limit_tokens:
            learned = replace(learned, tpm=LearnedValue(observation.limit_tokens, now + ttl_s))
        return learned

    def current(self, now: float) -> Limits:
        """The values not yet expired."""
        return Limits(rpm=_unexpired(self.rpm, now), tpm=_unexpired(self.tpm, now))


def _unexpired(learned: LearnedValue | None, now: float) -> float | None:
    return learned.value if learned is not None and now < learned.expires_at else None


def effective_limits(configured: Limits, learned: LearnedLimits | None, now: float) -> Limits:
    """The limits to enforce: configured and learned, the lower wins, expired values ignored."""
    return configured if learned is None else configured.lower(learned.current(now))


# ---- circuit breaker


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """Open after `failure_threshold` consecutive failures within `window_s`; after
    `cooldown_s` let one probe through; a probe that never reports frees its slot after
    `cooldown_s` again."""

    failure_threshold: int = 5
    window_s: float = 30.0
    cooldown_s: float = 30.0

    def __post_init__(self) -> None:
        if self.failure_threshold < 1:
            raise LimitsError("failure_threshold must be at least 1")
        if self.window_s <= 0 or self.cooldown_s <= 0:
            raise LimitsError("window_s and cooldown_s must be positive")


def counts_as_breaker_failure(error: BaseException) -> bool:
    """5xx answers, timeouts and lost connections; not 429 or other 4xx (the key is fine)."""
    if isinstance(error, ProviderError):
        if error.status is None:
            return error.retryable
        return error.status >= 500
    return isinstance(error, TimeoutError | ConnectionError)


class CircuitBreaker:
    """closed → open after N consecutive failures within a window → half-open (one probe)
    after the cooldown → closed when the probe succeeds, open again when it fails.

    Results reported while open come from calls sent before it opened and are ignored.
    """

    def __init__(
        self, config: BreakerConfig | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.config = config or BreakerConfig()
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._failures: deque[float] = deque()
        self._opened_at = 0.0
        self._probe_sent_at: float | None = None

    @property
    def state(self) -> BreakerState:
        if (
            self._state is BreakerState.OPEN
            and self._clock() - self._opened_at >= self.config.cooldown_s
        ):
            self._state = BreakerState.HALF_OPEN
            self._probe_sent_at = None
        return self._state

    def retry_in(self) -> float:
        """Seconds until a call may be sent (0 when `allow()` would say yes)."""
        state, now = self.state, self._clock()
        if state is BreakerState.CLOSED:
            return 0.0
        if state is BreakerState.OPEN:
            return self._opened_at + self.config.cooldown_s - now
        if self._probe_sent_at is None:
            return 0.0
        return max(0.0, self._probe_sent_at + self.config.cooldown_s - now)

    def allow(self) -> bool:
        """May a call be sent now? In half-open, only the first caller gets to (the probe)."""
        state, now = self.state, self._clock()
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.OPEN:
            return False
        probe_lapsed = (
            self._probe_sent_at is not None and now - self._probe_sent_at >= self.config.cooldown_s
        )
        if self._probe_sent_at is None or probe_lapsed:
            self._probe_sent_at = now
            return True
        return False

    def record_success(self) -> None:
        state = self.state
        if state is BreakerState.OPEN:
            return
        self._state = BreakerState.CLOSED
        self._failures.clear()
        self._probe_sent_at = None

    def record_failure(self) -> None:
        state, now = self.state, self._clock()
        if state is BreakerState.OPEN:
            return
        if state is BreakerState.HALF_OPEN:
            self._trip(now)
            return
        self._failures.append(now)
        while self._failures and now - self._failures[0] > self.config.window_s:
            self._failures.popleft()
        if len(self._failures) >= self.config.failure_threshold:
            self._trip(now)

    def record(self, error: BaseException | None) -> None:
        """Report a call's outcome: None for success; errors that are not the provider's
        fault (429, 4xx) leave the breaker as it is."""
        if error is None:
            self.record_success()
        elif counts_as_breaker_failure(error):
            self.record_failure()

    def _trip(self, now: float) -> None:
        self._state = BreakerState.OPEN
        self._opened_at = now
        self._failures.clear()
        self._probe_sent_at = None


# ---- GCRA


class GcraResult(NamedTuple):
    allowed: bool
    new_tat: float
    wait: float


def emission_interval(per_minute: float) -> float:
    """Seconds per unit for a per-minute limit."""
    _check_limit("per_minute", per_minute)
    return 60.0 / per_minute


def gcra(
    tat: float, now: float, emission_interval: float, burst: float, cost: float = 1.0
) -> GcraResult:
    """One GCRA decision: may `cost` units be taken at `now`?

    State per key: one number, `tat` (theoretical arrival time, seconds on the store's clock;
    0 for a key never seen). Units flow at one per `emission_interval` seconds and up to
    `burst` units may go at once. Allowed: `new_tat` replaces the stored `tat`, `wait` is 0.
    Refused: the stored `tat` stays, `wait` is the seconds until the same request would be
    allowed. A cost above `burst` is allowed only when the key is idle (it could never fit
    otherwise). Any window of length W admits at most `max(burst, cost) + W / interval` units.

    Written to translate 1:1 into Lua (Redis `EVAL`, `now` from `TIME`); a stored key may
    expire `new_tat - now` seconds after an admission, since a `tat` in the past acts as 0.
    """
    tolerance = max(burst, cost) * emission_interval
    base = max(tat, now)
    new_tat = base + cost * emission_interval
    allow_at = new_tat - tolerance
    if allow_at > now:
        return GcraResult(False, tat, allow_at - now)
    return GcraResult(True, new_tat, 0.0)


def tat_from_remaining(
    remaining: float, now: float, emission_interval: float, burst: float
) -> float:
    """The `tat` at which the limiter agrees with a provider that says `remaining` units are
    left; storing `max(tat, this)` makes the limiter no more generous than the provider."""
    return now + max(0.0, burst - remaining) * emission_interval
