"""Parsing of human units on the command line: durations (`30s`) and sizes (`512M`)."""

from __future__ import annotations

import re

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$", re.IGNORECASE)
_SIZE = re.compile(r"^\s*(\d+)\s*([kmgt]?)(i?b)?\s*$", re.IGNORECASE)
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_BYTES = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_duration(text: str) -> float:
    """`"30s"`, `"500ms"`, `"2m"`, `"1h"` or bare seconds → seconds."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"malformed duration {text!r}: use e.g. 30s, 500ms, 2m")
    return float(match.group(1)) * _SECONDS[(match.group(2) or "s").lower()]


def parse_size(text: str) -> int:
    """`"512M"`, `"1G"`, `"64k"`, `"2MiB"` or bare bytes → bytes (binary multiples)."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"malformed size {text!r}: use e.g. 512M, 1G, 64k")
    return int(match.group(1)) * _BYTES[match.group(2).lower()]
