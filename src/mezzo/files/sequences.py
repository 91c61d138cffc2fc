"""Queries on an indexed FASTA/FASTQ file: records, slices, motif search, subset statistics.

Regions are samtools-style: `name`, `name:start-end` or `name:start`, 1-based and inclusive;
commas in numbers are allowed. A name that itself contains ':' is matched whole first.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from mezzo.files.compression import ByteSource
from mezzo.files.errors import QueryError
from mezzo.files.index_db import IndexDB, SeqRecord
from mezzo.files.seqstats import nx_from_desc

IUPAC: dict[str, str] = {
    "A": "A", "C": "C", "G": "G", "T": "T", "U": "T",
    "R": "AG", "Y": "CT", "S": "CG", "W": "AT", "K": "GT", "M": "AC",
    "B": "CGT", "D": "AGT", "H": "ACT", "V": "ACG", "N": "ACGT",
}  # fmt: skip
_COMPLEMENT = str.maketrans("ACGTURYSWKMBDHVN", "TGCAAYRSWMKVHDBN")
_RANGE_RE = re.compile(r"^([\d,]+)(?:-([\d,]+))?$")
_N_RUN_RE = re.compile(rb"[Nn]+")
WINDOW = 1 << 20
MAX_MOTIF = 1000


@dataclass(frozen=True)
class Span:
    record: SeqRecord
    start: int  # 1-based inclusive
    end: int  # 1-based inclusive

    def __str__(self) -> str:
        return f"{self.record.name}:{self.start}-{self.end}"

    @property
    def length(self) -> int:
        return self.end - self.start + 1


@dataclass(frozen=True)
class Hit:
    record: str
    start: int
    end: int
    strand: str
    text: str


def reverse_complement_motif(motif: str) -> str:
    return motif.upper().translate(_COMPLEMENT)[::-1]


def motif_regex(motif: str, name: str) -> re.Pattern[bytes]:
    bad = [(i + 1, ch) for i, ch in enumerate(motif) if ch.upper() not in IUPAC]
    if not motif or bad or len(motif) > MAX_MOTIF:
        detail = (
            "an empty motif"
            if not motif
            else f"longer than {MAX_MOTIF}"
            if len(motif) > MAX_MOTIF
            else ", ".join(f"{ch!r} at position {i}" for i, ch in bad[:5])
        )
        raise QueryError(
            name,
            f"invalid motif {motif[:50]!r}: {detail}; use IUPAC nucleotide codes "
            f"({''.join(IUPAC)})",
        )
    parts = []
    for ch in motif.upper():
        bases = IUPAC[ch]
        parts.append(f"[{bases}{bases.lower()}]")
    return re.compile(("(?=(" + "".join(parts) + "))").encode())


class SequenceQuery:
    def __init__(self, name: str, source: ByteSource, index: IndexDB) -> None:
        self.name = name
        self.source = source
        self.index = index

    # --- records and regions ---

    def record(self, record_name: str) -> SeqRecord:
        found = self.index.records_named(record_name)
        if not found:
            examples = ", ".join(r.name for r in self.index.records(limit=5))
            raise QueryError(
                self.name,
                f"no record named {record_name!r} ({self.index.record_count()} records, "
                f"e.g. {examples})",
            )
        return found[0]

    def span(self, region: str) -> Span:
        region = region.strip()
        record_name, sep, coords = region.rpartition(":")
        match = _RANGE_RE.match(coords.replace(" ", "")) if sep else None
        found = self.index.records_named(record_name) if match else []
        if not found:  # a whole record, possibly with ':' in its name
            whole = self.index.records_named(region)
            rec = whole[0] if whole else self.record(record_name if match else region)
            return self._checked(rec, 1, rec.length, region)
        assert match is not None
        rec = found[0]
        start = int(match.group(1).replace(",", ""))
        end = int(match.group(2).replace(",", "")) if match.group(2) else rec.length
        return self._checked(rec, start, end, region)

    def _checked(self, rec: SeqRecord, start: int, end: int, region: str) -> Span:
        if rec.length == 0:
            raise QueryError(self.name, f"record {rec.name!r} is empty (0 bases)")
        if start < 1 or end < start or end > rec.length:
            raise QueryError(
                self.name,
                f"slice {region!r} is out of range: {rec.name!r} has {rec.length} bases "
                f"(valid: {rec.name}:1-{rec.length}, 1-based, inclusive)",
            )
        return Span(rec, start, end)

    # --- bases ---

    def _byte_of(self, rec: SeqRecord, i: int) -> int:
        return rec.seq_offset + (i // rec.line_bases) * rec.line_width + i % rec.line_bases

    def iter_bases(self, span: Span, window: int = WINDOW) -> Iterator[bytes]:
        """The bases of `span` in pieces of about `window`, newlines removed."""
        rec = span.record
        begin, stop = span.start - 1, span.end  # 0-based half-open
        if rec.regular:
            raw = self.source.iter_range(
                self._byte_of(rec, begin), self._byte_of(rec, stop - 1) + 1, window
            )
            for chunk in raw:
                yield chunk.translate(None, b"\r\n")
            return
        seen = 0
        for chunk in self.source.iter_range(rec.seq_offset, rec.end_offset, window):
            bases = chunk.translate(None, b"\r\n")
            lo, hi = max(begin - seen, 0), min(stop - seen, len(bases))
            seen += len(bases)
            if lo < hi:
                yield bases[lo:hi]
            if seen >= stop:
                return

    def fetch(self, span: Span) -> str:
        return b"".join(self.iter_bases(span)).decode("ascii")

    # --- motif search ---

    def search(
        self, motif: str, regions: Sequence[str] = (), max_hits: int = 100
    ) -> tuple[list[Hit], int]:
        """Hits on both strands in genome order (first `max_hits`) and the total count."""
        forward = motif_regex(motif, self.name)
        rc = reverse_complement_motif(motif)
        reverse = motif_regex(rc, self.name) if rc != motif.upper() else None
        spans = [self.span(r) for r in regions] or [
            Span(rec, 1, rec.length) for rec in self.index.records() if rec.length
        ]
        hits: list[Hit] = []
        total = 0
        for span in spans:
            total += self._search_span(span, forward, reverse, len(motif), hits, max_hits)
        return hits, total

    def _search_span(
        self,
        span: Span,
        forward: re.Pattern[bytes],
        reverse: re.Pattern[bytes] | None,
        size: int,
        hits: list[Hit],
        max_hits: int,
    ) -> int:
        total = 0
        carry = b""
        base = span.start - 1  # 0-based position of carry[0]
        for piece in self.iter_bases(span):
            buf = carry + piece
            strands = [("+", forward)] + ([("-", reverse)] if reverse else [])
            if len(hits) >= max_hits:
                total += sum(len(regex.findall(buf)) for _, regex in strands)
            else:
                found = sorted(
                    (m.start(), strand, m.group(1))
                    for strand, regex in strands
                    for m in regex.finditer(buf)
                )
                total += len(found)
                for start, strand, text in found[: max(0, max_hits - len(hits))]:
                    s = base + start + 1
                    hits.append(Hit(span.record.name, s, s + size - 1, strand, text.decode()))
            keep = min(size - 1, len(buf))
            carry = buf[len(buf) - keep :] if keep else b""
            base += len(buf) - len(carry)
        return total

    # --- statistics ---

    def stats_for_glob(self, glob: str | None) -> dict[str, Any]:
        agg = self.index.aggregate(glob)
        if not agg["records"]:
            raise QueryError(self.name, f"no record name matches {glob!r}")
        out: dict[str, Any] = {"selection": glob or "all records", **agg}
        out.update(nx_from_desc(self.index.lengths_desc(glob), agg["bases"], (0.5, 0.9)))
        return _with_fractions(out)

    def stats_for_span(self, span: Span) -> dict[str, Any]:
        counts = {"bases": 0, "gc": 0, "n": 0, "lower": 0, "n_runs": 0}
        in_run = False
        for piece in self.iter_bases(span):
            counts["bases"] += len(piece)
            upper = piece.upper()
            counts["gc"] += upper.count(b"G") + upper.count(b"C")
            counts["n"] += upper.count(b"N")
            counts["lower"] += len(piece) - len(piece.translate(None, b"acgtnrykmswbdhvu"))
            runs = _N_RUN_RE.findall(piece)
            counts["n_runs"] += len(runs) - (1 if in_run and piece[:1] in (b"N", b"n") else 0)
            in_run = piece[-1:] in (b"N", b"n")
        return _with_fractions({"selection": str(span), "records": 1, **counts})


def _with_fractions(stats: dict[str, Any]) -> dict[str, Any]:
    bases = stats["bases"]
    acgt = bases - stats["n"]
    stats["gc_fraction"] = round(stats["gc"] / acgt, 4) if acgt else 0.0
    stats["soft_masked_fraction"] = round(stats["lower"] / bases, 4) if bases else 0.0
    return stats
