"""Priority routing: which model serves a job, decided from what the caller observed.

A route names a primary model and an optional fallback (`default`: `openai:gpt-5-mini`, falling
back to `local:smollm2`). Each priority has a longest acceptable wait on the primary (`high`
waits forever). The decision is pure: the caller passes the primary's current rate-limit wait
and breaker state, and appends the `routed` event when the decision is a fallback.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from mezzo.governor.limits import CircuitBreaker

KNOWN_PROVIDERS: frozenset[str] = frozenset({"openai", "local"})


class RoutingError(ValueError):
    """A route, model reference or priority that does not exist or cannot be used."""


@dataclass(frozen=True, slots=True)
class ModelRef:
    provider: str
    model: str

    def __str__(self) -> str:
        return f"{self.provider}:{self.model}"


def parse_model_ref(spec: str, providers: Iterable[str] = KNOWN_PROVIDERS) -> ModelRef:
    """`"provider:model"` → ModelRef; the model part may itself contain colons."""
    known = sorted(providers)
    provider, sep, model = spec.strip().partition(":")
    if not sep or not provider or not model.strip():
        raise RoutingError(
            f"invalid model {spec!r}: expected provider:model, e.g. openai:gpt-5-mini"
        )
    if provider not in known:
        raise RoutingError(f"unknown provider {provider!r} in {spec!r}; known: {', '.join(known)}")
    return ModelRef(provider, model.strip())


class Priority(StrEnum):
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


def parse_priority(value: str) -> Priority:
    try:
        return Priority(value.strip().lower())
    except ValueError:
        choices = ", ".join(p.value for p in Priority)
        raise RoutingError(f"unknown priority {value!r}; expected one of {choices}") from None


# The order of queues and of budget waiters: higher first.
PRIORITY_RANK: Mapping[str, int] = MappingProxyType(
    {Priority.HIGH.value: 2, Priority.NORMAL.value: 1, Priority.LOW.value: 0}
)


def priority_rank(value: Priority | str) -> int:
    return PRIORITY_RANK[parse_priority(value).value]


DEFAULT_MAX_WAIT_S: Mapping[Priority, float] = MappingProxyType(
    {Priority.HIGH: math.inf, Priority.NORMAL: 30.0, Priority.LOW: 5.0}
)


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    primary: ModelRef
    fallback: ModelRef | None = None


DEFAULT_ROUTES: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {"default": {"primary": "openai:gpt-5-mini", "fallback": "local:smollm2"}}
)


class Reason(StrEnum):
    PRIMARY = "primary"
    BREAKER_OPEN = "breaker_open"
    WAIT_EXCEEDS_PRIORITY = "wait_exceeds_priority"
    BUDGET_DOWNGRADE = "budget_downgrade"


@dataclass(frozen=True, slots=True)
class PrimaryStatus:
    """What the caller knows about the primary right now.

    `wait_s`: the rate limiter's wait for this job's request and tokens (or a retry-after);
    `breaker_retry_in_s`: seconds until the breaker lets a call through (0 when closed, or
    half-open with the probe slot free).
    """

    wait_s: float = 0.0
    breaker_retry_in_s: float = 0.0

    @classmethod
    def observe(cls, wait_s: float, breaker: CircuitBreaker) -> PrimaryStatus:
        return cls(wait_s=wait_s, breaker_retry_in_s=breaker.retry_in())

    @property
    def breaker_open(self) -> bool:
        return self.breaker_retry_in_s > 0


@dataclass(frozen=True, slots=True)
class RouteDecision:
    route: str
    provider: str
    model: str
    reason: Reason
    # Seconds the job should wait before calling (re-queue with a not-before time).
    wait_s: float
    detail: str = ""

    @property
    def is_fallback(self) -> bool:
        return self.reason in (
            Reason.BREAKER_OPEN,
            Reason.WAIT_EXCEEDS_PRIORITY,
            Reason.BUDGET_DOWNGRADE,
        )


def _seconds(value: float) -> str:
    return "forever" if math.isinf(value) else f"{value:.1f} s"


@dataclass(frozen=True, slots=True)
class Router:
    routes: Mapping[str, Route]
    max_wait_s: Mapping[Priority, float] = field(default_factory=lambda: DEFAULT_MAX_WAIT_S)

    def __post_init__(self) -> None:
        missing = [p.value for p in Priority if p not in self.max_wait_s]
        if missing:
            raise RoutingError(f"no max wait for priorities: {', '.join(missing)}")
        for priority, wait in self.max_wait_s.items():
            if math.isnan(wait) or wait < 0:
                raise RoutingError(f"max wait for {priority.value} must be >= 0, got {wait!r}")

    @classmethod
    def from_settings(
        cls,
        routes: Mapping[str, Mapping[str, str | None]] = DEFAULT_ROUTES,
        max_wait_s: Mapping[str, float | str | None] | None = None,
        providers: Iterable[str] = KNOWN_PROVIDERS,
    ) -> Router:
        """From `mezzo.toml`-shaped settings.

        `routes`: `{name: {"primary": "provider:model", "fallback": "provider:model"}}`;
        `max_wait_s`: `{priority: seconds}` overriding the defaults; None or "inf" = forever.
        """
        known = frozenset(providers)
        parsed: dict[str, Route] = {}
        for name, spec in routes.items():
            primary = spec.get("primary")
            if not primary:
                raise RoutingError(f"route {name!r} has no primary model")
            fallback = spec.get("fallback")
            unknown = set(spec) - {"primary", "fallback"}
            if unknown:
                raise RoutingError(f"route {name!r}: unknown keys {', '.join(sorted(unknown))}")
            parsed[name] = Route(
                name=name,
                primary=parse_model_ref(primary, known),
                fallback=parse_model_ref(fallback, known) if fallback else None,
            )
        waits = dict(DEFAULT_MAX_WAIT_S)
        for priority, seconds in (max_wait_s or {}).items():
            waits[parse_priority(priority)] = _parse_wait(priority, seconds)
        return cls(routes=MappingProxyType(parsed), max_wait_s=MappingProxyType(waits))

    def route(self, name: str) -> Route:
        route = self.routes.get(name)
        if route is None:
            known = ", ".join(sorted(self.routes)) or "none"
            raise RoutingError(f"unknown route {name!r}; known routes: {known}")
        return route

    def decide(
        self,
        route_name: str,
        priority: Priority | str,
        primary: PrimaryStatus,
        *,
        downgrade: bool = False,
    ) -> RouteDecision:
        """Primary or fallback for one model call.

        - `downgrade` (the budget's `downgrade` behaviour): the fallback, whatever the rest.
        - breaker open: the fallback, unless the priority waits forever (`high`), which waits
          for the breaker's probe on the primary.
        - primary wait above the priority's maximum: the fallback.
        - otherwise the primary, after `wait_s`.
        Without a fallback the job waits on the primary (a downgrade is then an error).
        """
        route = self.route(route_name)
        level = parse_priority(priority)
        max_wait = self.max_wait_s[level]
        primary_wait = max(primary.wait_s, primary.breaker_retry_in_s)
        if downgrade:
            if route.fallback is None:
                raise RoutingError(f"route {route.name!r} has no fallback to downgrade to")
            return self._fallback(route, Reason.BUDGET_DOWNGRADE, "budget downgrade")
        if route.fallback is not None and not math.isinf(max_wait):
            if primary.breaker_open:
                detail = f"{route.primary} circuit open for {_seconds(primary.breaker_retry_in_s)}"
                return self._fallback(route, Reason.BREAKER_OPEN, detail)
            if primary_wait > max_wait:
                detail = (
                    f"{route.primary} would wait {_seconds(primary_wait)}, more than the "
                    f"{_seconds(max_wait)} allowed at {level.value} priority"
                )
                return self._fallback(route, Reason.WAIT_EXCEEDS_PRIORITY, detail)
        return RouteDecision(
            route=route.name,
            provider=route.primary.provider,
            model=route.primary.model,
            reason=Reason.PRIMARY,
            wait_s=primary_wait,
        )

    @staticmethod
    def _fallback(route: Route, reason: Reason, detail: str) -> RouteDecision:
        assert route.fallback is not None
        return RouteDecision(
            route=route.name,
            provider=route.fallback.provider,
            model=route.fallback.model,
            reason=reason,
            wait_s=0.0,
            detail=detail,
        )


def _parse_wait(priority: str, seconds: float | str | None) -> float:
    if seconds is None:
        return math.inf
    try:
        value = float(seconds)
    except ValueError:
        raise RoutingError(f"max wait for {priority!r} must be seconds or 'inf'") from None
    if math.isnan(value) or value < 0:
        raise RoutingError(f"max wait for {priority!r} must be >= 0, got {seconds!r}")
    return value
