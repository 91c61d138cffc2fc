from __future__ import annotations

import math

import pytest

from mezzo.governor.limits import BreakerConfig, CircuitBreaker
from mezzo.governor.router import (
    DEFAULT_MAX_WAIT_S,
    ModelRef,
    PrimaryStatus,
    Priority,
    Reason,
    Router,
    RoutingError,
    parse_model_ref,
    parse_priority,
)


def test_parse_model_ref() -> None:
    assert parse_model_ref("openai:gpt-5-mini") == ModelRef("openai", "gpt-5-mini")
    assert parse_model_ref(" local:smollm2 ") == ModelRef("local", "smollm2")
    ft = parse_model_ref("openai:ft:gpt-4o-mini:acme::abc")
    assert ft.model == "ft:gpt-4o-mini:acme::abc"
    assert str(ft) == "openai:ft:gpt-4o-mini:acme::abc"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("gpt-5-mini", "expected provider:model"),
        (":gpt-5", "expected provider:model"),
        ("openai:", "expected provider:model"),
        ("anthropic:claude", "unknown provider 'anthropic'.*known: local, openai"),
    ],
)
def test_bad_model_refs_are_clear_errors(spec: str, message: str) -> None:
    with pytest.raises(RoutingError, match=message):
        parse_model_ref(spec)


def test_extra_providers_can_be_allowed() -> None:
    assert parse_model_ref("stub:echo", {"openai", "local", "stub"}) == ModelRef("stub", "echo")


def test_parse_priority() -> None:
    assert parse_priority("HIGH") is Priority.HIGH
    assert parse_priority(Priority.LOW) is Priority.LOW
    with pytest.raises(RoutingError, match="expected one of high, normal, low"):
        parse_priority("urgent")


@pytest.fixture
def router() -> Router:
    return Router.from_settings(
        {
            "default": {"primary": "openai:gpt-5-mini", "fallback": "local:smollm2"},
            "no-fallback": {"primary": "openai:gpt-4.1"},
        }
    )


def test_defaults(router: Router) -> None:
    assert router.max_wait_s == DEFAULT_MAX_WAIT_S
    assert math.isinf(router.max_wait_s[Priority.HIGH])
    default = Router.from_settings()
    assert default.route("default").fallback == ModelRef("local", "smollm2")


def test_unknown_route_lists_the_known_ones(router: Router) -> None:
    with pytest.raises(
        RoutingError, match="unknown route 'fast'; known routes: default, no-fallback"
    ):
        router.decide("fast", "normal", PrimaryStatus())


def test_primary_when_it_is_ready(router: Router) -> None:
    for priority in Priority:
        decision = router.decide("default", priority, PrimaryStatus(wait_s=0.0))
        assert (decision.provider, decision.model) == ("openai", "gpt-5-mini")
        assert decision.reason is Reason.PRIMARY and not decision.is_fallback
        assert decision.wait_s == 0.0


@pytest.mark.parametrize(
    ("priority", "wait", "fallback"),
    [
        ("low", 4.0, False),
        ("low", 5.0, False),
        ("low", 5.5, True),
        ("normal", 29.0, False),
        ("normal", 31.0, True),
        ("high", 3600.0, False),
    ],
)
def test_wait_beyond_the_priority_goes_to_the_fallback(
    router: Router, priority: str, wait: float, fallback: bool
) -> None:
    decision = router.decide("default", priority, PrimaryStatus(wait_s=wait))
    assert decision.is_fallback is fallback
    if fallback:
        assert (decision.provider, decision.model) == ("local", "smollm2")
        assert decision.reason is Reason.WAIT_EXCEEDS_PRIORITY
        assert decision.wait_s == 0.0
        assert f"at {priority} priority" in decision.detail
    else:
        assert decision.provider == "openai" and decision.wait_s == wait


def test_open_breaker_sends_low_and_normal_to_the_fallback_and_high_waits(router: Router) -> None:
    now = [0.0]
    breaker = CircuitBreaker(BreakerConfig(failure_threshold=2, cooldown_s=20), lambda: now[0])
    breaker.record_failure()
    breaker.record_failure()
    status = PrimaryStatus.observe(wait_s=0.0, breaker=breaker)
    assert status.breaker_open
    for priority in ("low", "normal"):
        decision = router.decide("default", priority, status)
        assert decision.reason is Reason.BREAKER_OPEN
        assert decision.provider == "local"
    high = router.decide("default", "high", status)
    assert high.reason is Reason.PRIMARY and high.wait_s == pytest.approx(20.0)

    now[0] = 20.0  # half-open: the probe slot is free, so the primary is usable again
    status = PrimaryStatus.observe(wait_s=0.0, breaker=breaker)
    assert not status.breaker_open
    assert router.decide("default", "low", status).reason is Reason.PRIMARY


def test_downgrade_maps_to_the_fallback_for_every_priority(router: Router) -> None:
    for priority in Priority:
        decision = router.decide("default", priority, PrimaryStatus(), downgrade=True)
        assert decision.reason is Reason.BUDGET_DOWNGRADE
        assert (decision.provider, decision.model) == ("local", "smollm2")
    with pytest.raises(RoutingError, match="no fallback to downgrade to"):
        router.decide("no-fallback", "normal", PrimaryStatus(), downgrade=True)


def test_without_a_fallback_the_job_waits_on_the_primary(router: Router) -> None:
    decision = router.decide("no-fallback", "low", PrimaryStatus(wait_s=100, breaker_retry_in_s=7))
    assert decision.reason is Reason.PRIMARY
    assert decision.wait_s == 100


def test_configured_waits_override_the_defaults() -> None:
    router = Router.from_settings(
        {"default": {"primary": "openai:gpt-5-mini", "fallback": "local:smollm2"}},
        max_wait_s={"normal": 2, "high": "inf", "low": 0},
    )
    assert router.max_wait_s[Priority.NORMAL] == 2.0
    assert router.max_wait_s[Priority.LOW] == 0.0
    assert router.decide("default", "normal", PrimaryStatus(wait_s=3)).is_fallback
    assert router.decide("default", "low", PrimaryStatus(wait_s=0.01)).is_fallback
    assert not router.decide("default", "high", PrimaryStatus(wait_s=1e9)).is_fallback
    forever = Router.from_settings(max_wait_s={"low": None})
    assert math.isinf(forever.max_wait_s[Priority.LOW])


@pytest.mark.parametrize(
    ("routes", "waits", "message"),
    [
        ({"r": {"fallback": "local:smollm2"}}, None, "route 'r' has no primary model"),
        ({"r": {"primary": "openai:x", "fallbak": "local:y"}}, None, "unknown keys fallbak"),
        ({"r": {"primary": "bedrock:x"}}, None, "unknown provider 'bedrock'"),
        ({"r": {"primary": "openai:x"}}, {"urgent": 1}, "unknown priority 'urgent'"),
        ({"r": {"primary": "openai:x"}}, {"low": -1}, "must be >= 0"),
        ({"r": {"primary": "openai:x"}}, {"low": "soon"}, "seconds or 'inf'"),
    ],
)
def test_bad_settings_are_clear_errors(
    routes: dict[str, dict[str, str]], waits: dict[str, object] | None, message: str
) -> None:
    with pytest.raises(RoutingError, match=message):
        Router.from_settings(routes, waits)  # type: ignore[arg-type]
