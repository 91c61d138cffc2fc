"""How much of the budget a model call holds, and what a refused hold means. Pure.

A call holds `input + max_output` before it is sent: the input estimate carries a small margin
for what token counting approximates (tool-call framing, provider-specific message overhead) so
that the provider's reported usage stays inside the hold and the budget is never overshot.

The hold is the call's whole `max_output`, capped only by what is unspent: a call is never given
a smaller output allowance because other calls hold tokens. It waits for them instead (the
store keeps a line, by priority, so a big hold is not overtaken forever by small ones). When
the unspent budget itself is below `input + max_output`, the call holds what is left and its
`max_output_tokens` shrinks to fit; only when even `input + MIN_OUTPUT_TOKENS` is not unspent
is the budget exhausted.
"""

from __future__ import annotations

from dataclasses import dataclass

from mezzo.store.base import LedgerState

MIN_OUTPUT_TOKENS = 16


def input_hold(estimated_input: int) -> int:
    return estimated_input + estimated_input // 50 + 8


def hold_bounds(estimated_input: int, max_output: int) -> tuple[int, int]:
    """(minimum, wanted): the call needs at least `minimum` tokens to be worth sending."""
    held_input = input_hold(estimated_input)
    return held_input + MIN_OUTPUT_TOKENS, held_input + max_output


def output_allowance(granted: int, estimated_input: int) -> int:
    """The `max_output_tokens` a call may ask for with `granted` tokens held."""
    return max(MIN_OUTPUT_TOKENS, granted - input_hold(estimated_input))


@dataclass(frozen=True, slots=True)
class Exhausted:
    """Spent: even the call's minimum is more than is unspent."""

    needed: int
    unspent: int
    budget: int


@dataclass(frozen=True, slots=True)
class AskLess:
    """Asked for more than is unspent: ask again for `tokens`, all that is left."""

    tokens: int


@dataclass(frozen=True, slots=True)
class HeldByOthers:
    """Other calls hold (or wait in line for) what this one needs: wait for them to settle."""

    needed: int
    free: int
    held: int


Refusal = Exhausted | AskLess | HeldByOthers


def refusal(ledger: LedgerState, asked: int, minimum: int) -> Refusal:
    """Why a hold of `asked` tokens (at least `minimum`) was not granted, given the ledger the
    store answered with."""
    if ledger.unspent < minimum:
        return Exhausted(needed=minimum, unspent=ledger.unspent, budget=ledger.budget)
    if asked > ledger.unspent:
        return AskLess(ledger.unspent)
    return HeldByOthers(needed=asked, free=ledger.remaining, held=ledger.reserved)
