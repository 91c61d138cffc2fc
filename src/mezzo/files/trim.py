"""Fit tool output into a token cap, saying honestly how much was left out."""

from __future__ import annotations

from collections.abc import Callable, Iterable

TokenCounter = Callable[[str], int]
DEFAULT_MAX_TOKENS = 2000
_MARKER_RESERVE = 40


def estimate_tokens(text: str) -> int:
    """A cheap stand-in for a tokenizer: about four characters per token."""
    return (len(text) + 3) // 4


def trim_lines(
    head: str,
    lines: Iterable[str],
    *,
    total: int | None = None,
    unit: str = "lines",
    hint: str = "",
    max_tokens: int = DEFAULT_MAX_TOKENS,
    count_tokens: TokenCounter = estimate_tokens,
) -> str:
    """`head` then as many `lines` as fit in `max_tokens`; the rest is counted, not shown.

    `total` is how many items exist in all (more than `lines` when the caller already capped
    them); when it is None the remaining lines are consumed to count them.
    """
    budget = max_tokens - _MARKER_RESERVE - count_tokens(head)
    shown: list[str] = []
    used = 0
    iterator = iter(lines)
    overflow = False
    for line in iterator:
        cost = count_tokens(line) + 1
        if used + cost > budget:
            overflow = True
            break
        shown.append(line)
        used += cost
    text = "\n".join([head, *shown]) if head else "\n".join(shown)
    if overflow:
        more = total - len(shown) if total is not None else 1 + sum(1 for _ in iterator)
    else:
        more = total - len(shown) if total is not None else 0
    if more <= 0:
        return text
    marker = f"[truncated: {len(shown)} {unit} shown, {more} more{'; ' + hint if hint else ''}]"
    return f"{text}\n{marker}"


def fit_prefix(text: str, budget: int, count_tokens: TokenCounter) -> int:
    """Length of the longest prefix of `text` costing at most `budget` tokens."""
    if count_tokens(text) <= budget:
        return len(text)
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count_tokens(text[:mid]) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo
