"""Pure sequence statistics: length distribution, Nx/Lx, quality summaries."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def nx_from_desc(lengths_desc: Iterable[int], total: int, fractions: Iterable[float]) -> dict:
    """Nx and Lx from lengths sorted longest first: N50 is the length at which half the bases
    lie in records at least that long; L50 how many such records."""
    wanted = sorted(fractions)
    out: dict[str, int] = {}
    if total <= 0:
        return {f"{p}{round(f * 100)}": 0 for f in wanted for p in ("N", "L")}
    covered = 0
    i = 0
    for count, length in enumerate(lengths_desc, start=1):
        covered += length
        while i < len(wanted) and covered >= wanted[i] * total:
            out[f"N{round(wanted[i] * 100)}"] = length
            out[f"L{round(wanted[i] * 100)}"] = count
            i += 1
        if i == len(wanted):
            break
    return out


def nx_from_histogram(hist: Mapping[int, int], fractions: Iterable[float]) -> dict:
    """Nx and Lx from a length histogram (length -> number of records), exactly."""
    total = sum(length * c for length, c in hist.items())
    wanted = sorted(fractions)
    out: dict[str, int] = {f"{p}{round(f * 100)}": 0 for f in wanted for p in ("N", "L")}
    covered = count = i = 0
    for length in sorted(hist, reverse=True):
        c = hist[length]
        while i < len(wanted) and total and covered + length * c >= wanted[i] * total:
            needed = -(-(wanted[i] * total - covered) // length) if length else 0
            out[f"N{round(wanted[i] * 100)}"] = length
            out[f"L{round(wanted[i] * 100)}"] = count + max(1, int(needed))
            i += 1
        covered += length * c
        count += c
    return out


def _quantile(hist_sorted: list[tuple[int, int]], count: int, q: float) -> int:
    target = q * (count - 1)
    seen = 0
    for value, c in hist_sorted:
        seen += c
        if seen > target:
            return value
    return hist_sorted[-1][0]


def length_distribution(hist: Mapping[int, int]) -> dict[str, Any]:
    """Exact summary of a length histogram (length -> number of records)."""
    count = sum(hist.values())
    total = sum(length * c for length, c in hist.items())
    if not count:
        return {"records": 0, "bases": 0}
    asc = sorted(hist.items())
    summary: dict[str, Any] = {
        "records": count,
        "bases": total,
        "min": asc[0][0],
        "max": asc[-1][0],
        "mean": round(total / count, 2),
        "median": _quantile(asc, count, 0.5),
        "p10": _quantile(asc, count, 0.1),
        "p90": _quantile(asc, count, 0.9),
    }
    summary.update(nx_from_histogram(hist, (0.5, 0.9)))
    summary["bins"] = log_bins(asc)
    return summary


def log_bins(asc: list[tuple[int, int]]) -> dict[str, int]:
    """Record counts in decade bins: '0-9', '10-99', '100-999', ..."""
    bins: dict[str, int] = {}
    for length, c in asc:
        lo = 10 ** (len(str(length)) - 1) if length >= 10 else 0
        hi = max(9, lo * 10 - 1)
        key = f"{lo}-{hi}"
        bins[key] = bins.get(key, 0) + c
    return bins


def quality_summary(hist: Mapping[int, int], offset: int = 33) -> dict[str, Any]:
    """Summary of a histogram of quality characters (byte value -> count)."""
    total = sum(hist.values())
    if not total:
        return {"bases": 0}
    scores = {ch - offset: c for ch, c in hist.items()}
    mean = sum(q * c for q, c in scores.items()) / total
    asc = sorted(scores.items())
    return {
        "encoding": f"phred+{offset}",
        "mean": round(mean, 2),
        "median": _quantile(asc, total, 0.5),
        "min": asc[0][0],
        "max": asc[-1][0],
        "q20_fraction": round(sum(c for q, c in scores.items() if q >= 20) / total, 4),
        "q30_fraction": round(sum(c for q, c in scores.items() if q >= 30) / total, 4),
    }


def guess_quality_offset(hist: Mapping[int, int]) -> int:
    """phred+33 unless every character is at or above '@' + 1 (old Illumina phred+64)."""
    return 64 if hist and min(hist) >= 64 + 2 and max(hist) > 74 else 33
