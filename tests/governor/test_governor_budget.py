"""The budget's pure rules: how much a call holds, and what a refused hold means."""

from __future__ import annotations

from mezzo.governor.budget import (
    MIN_OUTPUT_TOKENS,
    AskLess,
    Exhausted,
    HeldByOthers,
    hold_bounds,
    input_hold,
    output_allowance,
    refusal,
)
from mezzo.store.base import LedgerState


def test_a_call_holds_its_input_with_a_margin_plus_its_whole_output() -> None:
    minimum, wanted = hold_bounds(1000, 4096)
    assert input_hold(1000) == 1000 + 20 + 8
    assert minimum == 1028 + MIN_OUTPUT_TOKENS and wanted == 1028 + 4096
    assert output_allowance(wanted, 1000) == 4096
    assert output_allowance(minimum, 1000) == MIN_OUTPUT_TOKENS


def test_a_refusal_is_exhaustion_only_when_the_minimum_is_not_unspent() -> None:
    spent = LedgerState(budget=1000, committed=950, reserved=0)
    assert refusal(spent, 60, 60) == Exhausted(needed=60, unspent=50, budget=1000)
    # Most of the budget is held by calls in flight: wait for them, never suspend.
    held = LedgerState(budget=1000, committed=100, reserved=880)
    assert refusal(held, 500, 60) == HeldByOthers(needed=500, free=20, held=880)
    # Less is unspent than the call wants: it asks again for what is left.
    smaller = LedgerState(budget=1000, committed=700, reserved=0)
    assert refusal(smaller, 500, 60) == AskLess(300)
