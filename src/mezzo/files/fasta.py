"""Streaming FASTA scanner: statistics and a faidx-style index in one pass, O(1) memory.

The scanner is fed uncompressed bytes in any chunking. It never holds more than one chunk plus
one partial header line. Per record it records where the sequence starts and ends, its length,
GC, N and soft-masked (lowercase) counts, N runs, and whether every full line has the same
width (then a base's byte offset is arithmetic; otherwise reads stream through the record).
"""

from __future__ import annotations

import heapq
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from mezzo.files.errors import FileFormatError
from mezzo.files.index_db import IndexDB, RecordRow
from mezzo.files.seqstats import length_distribution

SEQUENCE_BYTES = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz*-."
# G/C -> S, g/c -> s, A/T/U -> W, a/t/u -> w, N/n -> N, everything else -> '.'
_CLASSES = bytes(
    dict(zip(b"GCgcATUatuNn", b"SSssWWWwwwNN", strict=True)).get(b, 46) for b in range(256)
)
_INVALID_RE = re.compile(rb"[^A-Za-z*\-.\r\n]")
_N_MASK = bytes(78 if b in b"Nn" else 46 for b in range(256))  # N/n -> 'N', others -> '.'
MAX_HEADER = 1 << 20
TOP_N_RUNS = 10
_FLUSH_ROWS = 10_000


@dataclass(slots=True)
class _Record:
    name: str
    description: str
    header_line: int
    seq_offset: int
    crlf: int
    length: int = 0
    gc: int = 0
    n: int = 0
    lower: int = 0
    n_runs: int = 0
    width: int = 0  # bases per full line, 0 until the first line is complete
    col: int = 0  # bytes in the line being read
    short_seen: bool = False  # a line shorter than `width` was seen: only blank lines may follow
    irregular: bool = False
    run_start: int = -1  # start of an N run still open at the end of the last segment


def _count(data: bytes, byte: bytes) -> int:
    """`bytes.count`, skipped when the byte is absent (a memchr is far cheaper than a count)."""
    return data.count(byte) if byte in data else 0


def split_header(header: bytes) -> tuple[str, str]:
    text = header.decode("latin-1").strip()
    name, _, description = text.partition(" ")
    if "\t" in name:
        name, _, rest = name.partition("\t")
        description = f"{rest} {description}".strip()
    return name, description.strip()


@dataclass
class FastaScanner:
    source: str
    index: IndexDB
    offset: int = 0
    line: int = 1
    records: int = 0
    length_hist: Counter[int] = field(default_factory=Counter)
    totals: Counter[str] = field(default_factory=Counter)
    longest_n_runs: list[tuple[int, str, int]] = field(default_factory=list)
    first_names: list[str] = field(default_factory=list)
    _rec: _Record | None = None
    _carry: bytes = b""
    _at_line_start: bool = True
    _rows: list[RecordRow] = field(default_factory=list)

    def feed(self, data: bytes) -> None:
        buf = self._carry + data if self._carry else data
        base = self.offset - len(self._carry)
        self._carry = b""
        self.offset += len(data)
        pos, end = 0, len(buf)
        while pos < end:
            if self._at_line_start and buf[pos] == 62:  # '>'
                nl = buf.find(b"\n", pos)
                if nl < 0:
                    if end - pos > MAX_HEADER:
                        self._fail("a header line longer than 1 MiB", self.line)
                    self._carry = buf[pos:]
                    return
                self._start_record(buf[pos + 1 : nl], base + nl + 1, base + pos)
                pos = nl + 1
                continue
            head = buf.find(b"\n>", pos)
            seg_end = head + 1 if head >= 0 else end
            self._sequence(buf[pos:seg_end])
            pos = seg_end
            self._at_line_start = buf[seg_end - 1] == 10

    def finish(self) -> dict[str, Any]:
        if self._carry:
            self._start_record(self._carry[1:], self.offset, self.offset - len(self._carry))
        self._end_record(self.offset)
        self._flush()
        return self.summary()

    # --- records ---

    def _start_record(self, header: bytes, seq_offset: int, header_offset: int) -> None:
        self._end_record(header_offset)
        crlf = int(header.endswith(b"\r"))
        name, description = split_header(header)
        if not name:
            self._fail("a '>' header without a name", self.line)
        self._rec = _Record(name, description, self.line, seq_offset, crlf)
        if len(self.first_names) < 20:
            self.first_names.append(name)
        self.line += 1
        self._at_line_start = True

    def _end_record(self, end_offset: int) -> None:
        rec = self._rec
        if rec is None:
            return
        self._rec = None
        if rec.col:
            self._complete_line(rec, rec.col)
        self._close_run(rec, rec.length)
        regular = not rec.irregular and (rec.width > 0 or rec.length == 0)
        width = rec.width if regular else 0
        self._rows.append(
            (
                self.records,
                rec.name,
                rec.description,
                rec.header_line,
                rec.seq_offset,
                end_offset,
                rec.length,
                width,
                width + rec.crlf + 1 if regular else 0,
                rec.gc,
                rec.n,
                rec.lower,
                rec.n_runs,
            )
        )
        self.records += 1
        self.length_hist[rec.length] += 1
        self.totals["irregular_records"] += not regular
        if len(self._rows) >= _FLUSH_ROWS:
            self._flush()

    def _flush(self) -> None:
        self.index.add_records(self._rows)
        self._rows = []

    # --- sequence ---

    def _sequence(self, seg: bytes) -> None:
        rec = self._rec
        other = seg.translate(None, SEQUENCE_BYTES)  # line ends, and anything invalid
        newlines = other.count(b"\n")
        if rec is None:
            if seg.strip():
                self._fail("sequence data before the first '>' header", self.line)
            self.line += newlines
            return
        crs = other.count(b"\r")
        if len(other) != newlines + crs:
            self._invalid_byte(rec, seg)
        bases = len(seg) - newlines - crs
        if not bases and not newlines:
            return
        start = rec.length
        # one translate into classes, then a count per class: far fewer passes than per base
        classes = seg.translate(_CLASSES)
        strong, weak_lower = classes.count(b"S"), _count(classes, b"w")
        strong_lower, n = _count(classes, b"s"), _count(classes, b"N")
        rec.gc += strong + strong_lower
        rec.n += n
        rec.lower += strong_lower + weak_lower + _count(seg, b"n")
        if self.totals["sampled"] < 1 << 20:
            self.totals["sampled"] += bases
            self.totals["sampled_acgtn"] += (
                strong + strong_lower + weak_lower + n + _count(classes, b"W")
            )
        if n:
            self._n_runs(rec, seg, start)
        elif bases:
            self._close_run(rec, start)
        if not rec.irregular:
            self._lines(rec, seg, newlines)
        rec.length += bases
        self.line += newlines

    def _invalid_byte(self, rec: _Record, seg: bytes) -> None:
        match = _INVALID_RE.search(seg)
        at = match.start() if match else 0
        self._fail(
            f"byte 0x{seg[at]:02x} is not a sequence character (is this really FASTA?)",
            self.line + seg.count(b"\n", 0, at),
            rec.name,
        )

    def _n_runs(self, rec: _Record, seg: bytes, start: int) -> None:
        """Count N runs with C-level passes; only runs long enough for the top list are
        located one by one."""
        mask = seg.translate(_N_MASK, b"\r\n")
        size = len(mask)
        lead = size - len(mask.lstrip(b"N"))
        trail = size - len(mask.rstrip(b"N"))
        if lead == 0:
            self._close_run(rec, start)
        elif lead == size:
            if rec.run_start < 0:
                rec.run_start = start
                rec.n_runs += 1
            return
        rec.n_runs += mask.count(b".N") + (1 if lead and rec.run_start < 0 else 0)
        if lead:
            if rec.run_start < 0:
                rec.run_start = start
            self._close_run(rec, start + lead)
        heap = self.longest_n_runs
        pos, stop = lead, size - trail
        while True:
            shortest = heap[0][0] + 1 if len(heap) >= TOP_N_RUNS else 1
            found = mask.find(b"N" * shortest, pos, stop)  # leftmost: a run's first base
            if found < 0:
                break
            end = mask.find(b".", found, stop)
            self._push_run(end - found, rec.name, start + found + 1)
            pos = end
        if trail:
            rec.run_start = start + size - trail

    def _close_run(self, rec: _Record, end: int) -> None:
        if rec.run_start >= 0:
            self._push_run(end - rec.run_start, rec.name, rec.run_start + 1)
            rec.run_start = -1

    def _push_run(self, length: int, name: str, start: int) -> None:
        item = (length, name, start)
        if len(self.longest_n_runs) < TOP_N_RUNS:
            heapq.heappush(self.longest_n_runs, item)
        else:
            heapq.heappushpop(self.longest_n_runs, item)

    def _lines(self, rec: _Record, seg: bytes, newlines: int) -> None:
        """Check line widths; full lines are checked in one strided slice, not one by one."""
        pos = 0
        try_stride = True
        while newlines and not rec.irregular:
            if try_stride and rec.width and not rec.short_seen:
                stride = rec.width + rec.crlf + 1
                first = pos + rec.width + rec.crlf - rec.col
                if first >= pos:
                    found = seg[first::stride][:newlines]
                    if found == b"\n" * newlines:
                        rec.col = len(seg) - (first + (newlines - 1) * stride) - 1
                        return
                    if newlines > 1 and found[: newlines - 1] == b"\n" * (newlines - 1):
                        pos = first + (newlines - 2) * stride + 1
                        rec.col = 0
                        newlines = 1
                try_stride = False
            nl = seg.find(b"\n", pos)
            self._complete_line(rec, rec.col + nl - pos)
            rec.col = 0
            pos = nl + 1
            newlines -= 1
        if rec.irregular:
            return
        if rec.short_seen and seg[pos:].strip(b"\r"):
            rec.irregular = True
        rec.col += len(seg) - pos

    def _complete_line(self, rec: _Record, size: int) -> None:
        bases = max(0, size - rec.crlf)
        if rec.width == 0 and not rec.short_seen:
            if bases:
                rec.width = bases
            else:
                rec.short_seen = True
        elif rec.short_seen:
            if bases:
                rec.irregular = True
        elif bases > rec.width:
            rec.irregular = True
        elif bases < rec.width:
            rec.short_seen = True

    def _fail(self, problem: str, line: int, record: str | None = None) -> None:
        raise FileFormatError(self.source, problem, line=line, record=record)

    # --- summary ---

    def summary(self) -> dict[str, Any]:
        dist = length_distribution(self.length_hist)
        bases = dist.get("bases", 0)
        sampled = self.totals["sampled"]
        nucleotide = sampled == 0 or self.totals["sampled_acgtn"] >= 0.9 * sampled
        agg = self.index.aggregate()
        out: dict[str, Any] = {
            "records": self.records,
            "alphabet": "nucleotide" if nucleotide else "protein",
            "lengths": dist,
            "first_names": self.first_names,
            "irregular_records": self.totals["irregular_records"],
        }
        if nucleotide:
            acgt = bases - agg["n"]
            out.update(
                gc_fraction=round(agg["gc"] / acgt, 4) if acgt else 0.0,
                n_bases=agg["n"],
                n_runs=agg["n_runs"],
                longest_n_runs=[
                    {"record": name, "start": start, "length": length}
                    for length, name, start in sorted(self.longest_n_runs, reverse=True)
                ],
                soft_masked_fraction=round(agg["lower"] / bases, 4) if bases else 0.0,
            )
        return out
