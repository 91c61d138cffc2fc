"""What one file may cost: an upload after decompression, and one tool call on it.

Uploads: inflated size and inflation ratio.

`MEZZO_MAX_UPLOAD_BYTES` counts the bytes received (compressed, for gzip). A gzip or BGZF
file is also held to `max_inflated_bytes` of content and, once it has inflated past
`ratio_grace_bytes`, to `max_inflation_ratio` bytes out per byte in: ordinary data compresses
3–20 times, a bomb about 1,000 times (a 1.3 MB gzip of 1 GB). The guard is checked after every
bounded inflation step, so a bomb is stopped after at most one step past the limit.

Tool calls (the model chooses the arguments): `tool_seconds` of work per call (checked at every
chunk read and inside search loops; tools run in threads, which cannot be killed, so the limit
is cooperative), lines held at most `max_line_bytes` (the rest of a longer line is skipped
while streaming, and the answer says the line was cut), at most `max_items` hits, matches or
rows collected (`max_hits`, `max_matches`, `limit`, `count` are clamped to it; the token cap
shows fewer anyway), and at most `max_regions` regions per `search_motif`.
"""

from __future__ import annotations

from dataclasses import dataclass

from mezzo.files.errors import InflatedTooLarge


@dataclass(frozen=True)
class FileLimits:
    max_inflated_bytes: int = 64 << 30
    max_inflation_ratio: float = 200.0
    ratio_grace_bytes: int = 16 << 20
    tool_seconds: float = 20.0
    max_line_bytes: int = 1 << 20
    max_items: int = 1000
    max_regions: int = 100

    def guard(self, name: str) -> InflateGuard:
        return InflateGuard(self, name)


class InflateGuard:
    """Counts compressed bytes in and inflated bytes out; raises `InflatedTooLarge`."""

    def __init__(self, limits: FileLimits, name: str) -> None:
        self.limits = limits
        self.name = name
        self.consumed = 0
        self.produced = 0

    def check(self, consumed: int, produced: int) -> None:
        """Report totals so far (compressed bytes read, bytes inflated)."""
        self.consumed, self.produced = consumed, produced
        limits = self.limits
        if produced > limits.max_inflated_bytes:
            raise InflatedTooLarge(
                self.name,
                f"inflates past the limit of {limits.max_inflated_bytes} bytes "
                f"(MEZZO_MAX_INFLATED_BYTES)",
                limits.max_inflated_bytes,
            )
        if produced > limits.ratio_grace_bytes and produced > limits.max_inflation_ratio * max(
            consumed, 1
        ):
            raise InflatedTooLarge(
                self.name,
                f"inflates more than {limits.max_inflation_ratio:g} times "
                f"({produced} bytes from the first {consumed} compressed bytes; "
                f"MEZZO_MAX_INFLATION_RATIO): refused as a decompression bomb",
                limits.max_inflated_bytes,
            )
