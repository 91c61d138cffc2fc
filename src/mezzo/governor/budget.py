"""How much of the budget a model call holds before it is sent.

The hold is `input + max_output`, where the input estimate carries a small margin for what
token counting approximates (tool-call framing, provider-specific message overhead) so that
the provider's reported usage stays inside the hold and the budget is never overshot.
"""

from __future__ import annotations

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
