"""The rate limiter's state update for one key with a request and a token limit.

State is a small dict (`tat_r`, `tat_t`: theoretical arrival times; `blocked_until`) that each
backend stores and updates atomically: SQLite inside its write transaction, Redis in a Lua
script that mirrors this function. The GCRA step itself is `mezzo.governor.limits.gcra`.
"""

from __future__ import annotations

from typing import Any

from mezzo.governor.limits import emission_interval, gcra
from mezzo.store.base import RateLimit


def default_burst(limit: RateLimit) -> float:
    """Ten seconds' worth of the limit unless configured."""
    return limit.burst if limit.burst is not None else max(1.0, limit.per_minute / 6.0)


def gcra_acquire(
    state: dict[str, Any],
    now: float,
    requests: int,
    tokens: int,
    limits: tuple[RateLimit | None, RateLimit | None],
) -> tuple[float, dict[str, Any]]:
    """Take `requests` and `tokens` if every limit admits them; else the wait and state unchanged.
    A negative amount gives capacity back and is always taken."""
    blocked = float(state.get("blocked_until", 0.0))
    if blocked > now:
        return (blocked - now, state)
    rpm, tpm = limits
    waits: list[float] = []
    new_state = dict(state)
    for name, limit, cost in (("tat_r", rpm, requests), ("tat_t", tpm, tokens)):
        if limit is None or cost == 0:
            continue
        if cost < 0:
            # A refund: capacity taken earlier and not used goes back (never below now).
            interval = emission_interval(limit.per_minute)
            new_state[name] = max(now, float(state.get(name, 0.0)) + cost * interval)
            continue
        result = gcra(
            float(state.get(name, 0.0)),
            now,
            emission_interval(limit.per_minute),
            default_burst(limit),
            float(cost),
        )
        waits.append(result.wait)
        new_state[name] = result.new_tat
    if any(w > 0 for w in waits):
        return (max(waits), state)
    return (0.0, new_state)
