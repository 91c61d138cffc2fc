"""`RetryLater`: the documented way for a step to give its job back, and the backoff it uses."""

from __future__ import annotations

import random


class RetryLater(Exception):
    """Give the job back: after `delay_s` (None: the worker's backoff for the job's attempt),
    spending an attempt when `counts` is true."""

    def __init__(self, delay_s: float | None, error: str, *, counts: bool) -> None:
        super().__init__(error)
        self.delay_s = delay_s
        self.counts = counts


def backoff(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with full jitter around the nominal delay (±50 %)."""
    nominal = min(cap, base * 2 ** max(0, attempt - 1))
    return nominal * random.uniform(0.5, 1.5)
