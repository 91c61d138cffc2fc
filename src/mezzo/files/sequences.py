"""Queries on an indexed FASTA/FASTQ file: records, slices, motif search, subset statistics.

Regions are samtools-style: `name`, `name:start-end` or `name:start`, 1-based and inclusive;
commas in numbers are allowed. A name that itself contains ':' is matched whole first.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from mezzo.files.compression import ByteSource
from mezzo.files.errors import QueryError
from mezzo.files.index_db import IndexDB, SeqRecord
from mezzo.files.seqstats import nx_from_desc
from mezzo.files.work import Deadline

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
        parts.append(f"[{bases}]" if len(bases) > 1 else bases)
    return re.compile("".join(parts).encode())  # matched against upper-cased bases


def _starts(regex: re.Pattern[bytes], upper: bytes, deadline: Deadline | None) -> Iterator[int]:
    """Every (overlapping) match start, lazily; `search` from each start + 1 keeps re's fast
    prefix scan, which a lookahead pattern would lose."""
    pos = 0
    found = 0
    while (match := regex.search(upper, pos)) is not None:
        yield match.start()
        pos = match.start() + 1
        found += 1
        if deadline is not None and found % 4096 == 0:
            deadline.check("counting motif hits")


_SMALL_RECORD = 1 << 20


class _Readahead:
    """Serves increasing byte ranges from one large read, for scans over many small records."""

    def __init__(self, source: ByteSource, size: int = 4 << 20) -> None:
        self.source = source
        self.size = size
        self.buf = b""
        self.start = 0

    def get(self, start: int, end: int) -> bytes:
        if start < self.start or end > self.start + len(self.buf):
            self.buf = self.source.read(start, max(end, start + self.size))
            self.start = start
        return self.buf[start - self.start : end - self.start]


class _MotifSearch:
    """Collects the first `max_hits` hits and counts all of them, in O(max_hits) memory."""

    def __init__(
        self,
        forward: re.Pattern[bytes],
        reverse: re.Pattern[bytes] | None,
        size: int,
        max_hits: int,
        deadline: Deadline | None = None,
    ) -> None:
        self.forward, self.reverse, self.size, self.max_hits = forward, reverse, size, max_hits
        self.deadline = deadline
        self.hits: list[Hit] = []
        self.total = 0

    def scan(self, record: str, buf: bytes, base: int) -> None:
        """Search `buf`, whose first base is at 0-based position `base` of `record`."""
        upper = buf.upper()
        if b"U" in upper:  # RNA: U pairs like T
            upper = upper.replace(b"U", b"T")
        strands = [((start, "+") for start in _starts(self.forward, upper, self.deadline))]
        if self.reverse is not None:
            strands.append((start, "-") for start in _starts(self.reverse, upper, self.deadline))
        if len(self.hits) >= self.max_hits:  # only counting now: no need to merge strands
            self.total += sum(sum(1 for _ in strand) for strand in strands)
            return
        found = heapq.merge(*strands) if len(strands) > 1 else strands[0]
        for start, strand in found:
            self.total += 1
            if len(self.hits) < self.max_hits:
                first = base + start + 1
                text = buf[start : start + self.size].decode()
                self.hits.append(Hit(record, first, first + self.size - 1, strand, text))


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
        self,
        motif: str,
        regions: Sequence[str] = (),
        max_hits: int = 100,
        deadline: Deadline | None = None,
    ) -> tuple[list[Hit], int]:
        """Hits on both strands in genome order (first `max_hits`) and the total count."""
        forward = motif_regex(motif, self.name)
        rc = reverse_complement_motif(motif)
        reverse = motif_regex(rc, self.name) if rc != motif.upper() else None
        search = _MotifSearch(forward, reverse, len(motif), max_hits, deadline)
        if regions:
            for span in [self.span(r) for r in regions]:
                self._search_span(span, search)
            return search.hits, search.total
        ahead = _Readahead(self.source)
        for rec in self.index.records():
            if rec.end_offset - rec.seq_offset <= _SMALL_RECORD:  # reads, contigs: read ahead
                bases = ahead.get(rec.seq_offset, rec.end_offset).translate(None, b"\r\n")
                search.scan(rec.name, bases, 0)
            elif rec.length:
                self._search_span(Span(rec, 1, rec.length), search)
        return search.hits, search.total

    def _search_span(self, span: Span, search: _MotifSearch) -> None:
        carry = b""
        base = span.start - 1  # 0-based position of carry[0]
        for piece in self.iter_bases(span):
            buf = carry + piece
            search.scan(span.record.name, buf, base)
            keep = min(search.size - 1, len(buf))
            carry = buf[len(buf) - keep :] if keep else b""
            base += len(buf) - len(carry)

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
