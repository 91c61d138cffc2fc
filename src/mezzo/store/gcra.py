"""GCRA (generic cell rate algorithm) over a key's request and token limits, as pure state math.

State is a small dict (`tat_r`, `tat_t`: theoretical arrival times; `blocked_until`) that each
backend stores and updates atomically: SQLite inside its write transaction, Redis in a Lua
script that mirrors this function line by line.
"""

from __future__ import annotations

from typing import Any

from mezzo.store.base import RateLimit


def _burst(limit: RateLimit) -> float:
    return limit.burst if limit.burst is not None else max(1.0, limit.per_minute / 6.0)


def _check(tat: float, now: float, cost: int, limit: RateLimit) -> tuple[float, float]:
    """Returns (wait, new_tat) for taking `cost` units now."""
    interval = 60.0 / limit.per_minute
    tolerance = max(_burst(limit), float(cost)) * interval
    new_tat = max(tat, now) + cost * interval
    wait = new_tat - now - tolerance
    return (max(0.0, wait), new_tat)


def gcra_acquire(
    state: dict[str, Any],
    now: float,
    requests: int,
    tokens: int,
    limits: tuple[RateLimit | None, RateLimit | None],
) -> tuple[float, dict[str, Any]]:
    """Take `requests` and `tokens` if every limit admits them; else the wait and state unchanged."""
    blocked = float(state.get("blocked_until", 0.0))
    if blocked > now:
        return (blocked - now, state)
    rpm, tpm = limits
    waits: list[float] = []
    new_state = dict(state)
    for name, limit, cost in (("tat_r", rpm, requests), ("tat_t", tpm, tokens)):
        if limit is None or cost <= 0:
            continue
        wait, new_tat = _check(float(state.get(name, 0.0)), now, cost, limit)
        waits.append(wait)
        new_state[name] = new_tat
    if any(w > 0 for w in waits):
        return (max(waits), state)
    return (0.0, new_state)
