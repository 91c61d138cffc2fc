from __future__ import annotations

import math
from email.utils import formatdate

import pytest

from mezzo.governor.limits import (
    BreakerConfig,
    BreakerState,
    CircuitBreaker,
    LearnedLimits,
    Limits,
    LimitsError,
    RateLimitObservation,
    counts_as_breaker_failure,
    effective_limits,
    parse_duration,
    parse_rate_limit_headers,
    parse_retry_after,
)
from mezzo.providers.base import ProviderError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("6m0s", 360.0),
        ("1.5s", 1.5),
        ("20ms", 0.02),
        ("0s", 0.0),
        ("1h2m3.5s", 3723.5),
        ("59.999s", 59.999),
        ("1m", 60.0),
        ("250us", 0.00025),
        ("7", 7.0),
        ("0.25", 0.25),
        (" 2s ", 2.0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "s", "6x", "1m-2s", "-1s", "-3", "nan", "inf", "1s2", "ms"])
def test_parse_duration_rejects_garbage(text: str) -> None:
    with pytest.raises(LimitsError):
        parse_duration(text)


def test_parse_retry_after_seconds_and_http_date() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("12", now) == 12.0
    assert parse_retry_after("0.5", now) == 0.5
    assert parse_retry_after(formatdate(now + 30, usegmt=True), now) == pytest.approx(30.0)
    assert parse_retry_after(formatdate(now - 30, usegmt=True), now) == 0.0
    for bad in ["soon", "-1", ""]:
        with pytest.raises(LimitsError):
            parse_retry_after(bad, now)


OPENAI_HEADERS = {
    "X-RateLimit-Limit-Requests": "60",
    "X-RateLimit-Limit-Tokens": "150000",
    "X-RateLimit-Remaining-Requests": "59",
    "X-RateLimit-Remaining-Tokens": "149984",
    "X-RateLimit-Reset-Requests": "1s",
    "X-RateLimit-Reset-Tokens": "6m0s",
}


def test_parse_openai_rate_limit_headers() -> None:
    observed = parse_rate_limit_headers(OPENAI_HEADERS, now=0.0)
    assert observed == RateLimitObservation(
        limit_requests=60,
        limit_tokens=150_000,
        remaining_requests=59,
        remaining_tokens=149_984,
        reset_requests_s=1.0,
        reset_tokens_s=360.0,
        retry_after_s=None,
    )
    assert observed.blocked_until(100.0) is None


def test_retry_after_ms_wins_over_retry_after() -> None:
    observed = parse_rate_limit_headers({"retry-after": "2", "retry-after-ms": "1500"}, now=0.0)
    assert observed.retry_after_s == 1.5
    assert observed.blocked_until(10.0) == 11.5
    assert parse_rate_limit_headers({"Retry-After": "3"}, now=0.0).retry_after_s == 3.0


def test_malformed_provider_headers_are_dropped_not_raised() -> None:
    observed = parse_rate_limit_headers(
        {
            "x-ratelimit-limit-requests": "lots",
            "x-ratelimit-limit-tokens": "-5",
            "x-ratelimit-reset-tokens": "whenever",
            "retry-after-ms": "nan",
            "retry-after": "2",
        },
        now=0.0,
    )
    assert observed == RateLimitObservation(retry_after_s=2.0)


def test_limits_validate_and_lower_wins() -> None:
    for bad in [0, -1, math.nan, math.inf]:
        with pytest.raises(LimitsError):
            Limits(rpm=bad)
    a = Limits(rpm=100, tpm=None)
    b = Limits(rpm=500, tpm=20_000)
    assert a.lower(b) == Limits(rpm=100, tpm=20_000)
    assert b.lower(a) == Limits(rpm=100, tpm=20_000)


def test_learned_limits_merge_with_configured_and_expire() -> None:
    configured = Limits(rpm=100, tpm=200_000)
    learned = LearnedLimits().learn(parse_rate_limit_headers(OPENAI_HEADERS, 0.0), 0.0, ttl_s=60)
    assert effective_limits(configured, learned, now=10) == Limits(rpm=60, tpm=150_000)
    # A response naming only the token limit refreshes that one alone.
    learned = learned.learn(RateLimitObservation(limit_tokens=400_000), now=50, ttl_s=60)
    assert effective_limits(configured, learned, now=70) == Limits(rpm=100, tpm=200_000)
    assert learned.current(70) == Limits(rpm=None, tpm=400_000)
    assert effective_limits(configured, learned, now=200) == configured
    assert effective_limits(Limits(), learned, now=55) == Limits(rpm=60, tpm=400_000)
    assert effective_limits(configured, None, now=0) == configured


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _breaker(clock: FakeClock) -> CircuitBreaker:
    return CircuitBreaker(BreakerConfig(failure_threshold=3, window_s=10, cooldown_s=5), clock)


def test_breaker_opens_after_consecutive_failures_within_the_window() -> None:
    clock = FakeClock()
    breaker = _breaker(clock)
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED and breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()
    assert breaker.retry_in() == pytest.approx(5.0)


def test_breaker_success_resets_the_consecutive_count() -> None:
    clock = FakeClock()
    breaker = _breaker(clock)
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED


def test_breaker_forgets_failures_older_than_the_window() -> None:
    clock = FakeClock()
    breaker = _breaker(clock)
    breaker.record_failure()
    breaker.record_failure()
    clock.advance(10.5)
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    clock.advance(1)
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN


def _open(clock: FakeClock) -> CircuitBreaker:
    breaker = _breaker(clock)
    for _ in range(3):
        breaker.record_failure()
    return breaker


def test_half_open_lets_exactly_one_probe_through() -> None:
    clock = FakeClock()
    breaker = _open(clock)
    clock.advance(4.9)
    assert breaker.state is BreakerState.OPEN and not breaker.allow()
    clock.advance(0.1)
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.retry_in() == 0.0
    assert breaker.allow()
    assert not breaker.allow()
    assert breaker.retry_in() == pytest.approx(5.0)


def test_probe_success_closes() -> None:
    clock = FakeClock()
    breaker = _open(clock)
    clock.advance(5)
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow() and breaker.allow()
    # The count starts afresh: it takes the full threshold to open again.
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED


def test_probe_failure_reopens_for_a_full_cooldown() -> None:
    clock = FakeClock()
    breaker = _open(clock)
    clock.advance(5)
    assert breaker.allow()
    clock.advance(1)
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert breaker.retry_in() == pytest.approx(5.0)
    clock.advance(5)
    assert breaker.state is BreakerState.HALF_OPEN


def test_a_probe_that_never_reports_frees_its_slot_after_the_cooldown() -> None:
    clock = FakeClock()
    breaker = _open(clock)
    clock.advance(5)
    assert breaker.allow()
    clock.advance(4.9)
    assert not breaker.allow()
    clock.advance(0.1)
    assert breaker.allow()


def test_results_of_calls_sent_before_opening_are_ignored_while_open() -> None:
    clock = FakeClock()
    breaker = _open(clock)
    clock.advance(2)
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert breaker.retry_in() == pytest.approx(3.0)


@pytest.mark.parametrize(
    ("error", "counts"),
    [
        (ProviderError("busy", status=503), True),
        (ProviderError("boom", status=500), True),
        (ProviderError("timed out", status=None, retryable=True), True),
        (ProviderError("slow down", status=429, retry_after=1.0), False),
        (ProviderError("bad request", status=400, retryable=False), False),
        (ProviderError("bad key", status=None, retryable=False), False),
        (TimeoutError(), True),
        (ConnectionResetError(), True),
        (ValueError("ours"), False),
    ],
)
def test_which_errors_count_against_the_breaker(error: BaseException, counts: bool) -> None:
    assert counts_as_breaker_failure(error) is counts
    clock = FakeClock()
    breaker = _breaker(clock)
    for _ in range(3):
        breaker.record(error)
    assert (breaker.state is BreakerState.OPEN) is counts
    breaker.record(None)
    assert breaker.state is (BreakerState.OPEN if counts else BreakerState.CLOSED)


def test_breaker_config_is_validated() -> None:
    with pytest.raises(LimitsError):
        BreakerConfig(failure_threshold=0)
    with pytest.raises(LimitsError):
        BreakerConfig(cooldown_s=0)


# Against mezzo's stub LLM, whose limits are enforced and reported the way OpenAI does it.


def test_durations_written_by_the_stub_parse_back() -> None:
    from mezzo.stub.limits import format_duration

    for seconds in [0.0, 0.0004, 0.02, 0.999, 1.0, 1.5, 59.999, 60.0, 62.5, 360.0, 3600.001]:
        assert parse_duration(format_duration(seconds)) == pytest.approx(
            math.ceil(seconds * 1000) / 1000
        )


def test_stub_headers_parse_into_an_observation() -> None:
    from mezzo.stub.limits import RateLimits

    stub = RateLimits(rpm=60, tpm=1000)
    stub.acquire("key", 900, now=0.0)
    refused = stub.acquire("key", 900, now=0.5)
    assert not refused.allowed
    observed = parse_rate_limit_headers(refused.headers, now=0.5)
    assert (observed.limit_requests, observed.limit_tokens) == (60, 1000)
    assert observed.remaining_tokens == 108
    assert observed.reset_tokens_s == pytest.approx(53.5)
    learned = LearnedLimits().learn(observed, now=0.5)
    assert effective_limits(Limits(tpm=5000), learned, now=1.0) == Limits(rpm=60, tpm=1000)
