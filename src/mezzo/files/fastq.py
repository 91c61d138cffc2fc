"""Streaming FASTQ scanner (four-line records): statistics, quality summary and a per-read
index in one pass, O(1) memory in the file size.

Each chunk of complete records is handled as columns (headers, sequences, qualities) with
slicing and `map`, so the per-read Python work is a handful of C-level calls.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from itertools import accumulate, compress, repeat
from operator import add, methodcaller, ne
from typing import Any

from mezzo.files.errors import FileFormatError
from mezzo.files.fasta import SEQUENCE_BYTES, split_header
from mezzo.files.index_db import IndexDB
from mezzo.files.seqstats import guess_quality_offset, length_distribution, quality_summary

_QUALITY_BYTES = bytes(range(33, 127))
MAX_RECORD = 256 << 20
_is_header = methodcaller("startswith", b"@")
_is_plus = methodcaller("startswith", b"+")
_strip_cr = methodcaller("rstrip", b"\r")


def _names(heads: list[bytes]) -> tuple[list[str], list[str]]:
    """Read names and descriptions of '@' header lines, decoded in one go."""
    text = b"\n".join(heads).decode("latin-1")
    if "\t" in text or "\r" in text:
        pairs = list(map(split_header, (h[1:] for h in heads)))
        return [p[0] for p in pairs], [p[1] for p in pairs]
    parts = list(map(methodcaller("partition", " "), text.split("\n")))
    return [p[0][1:] for p in parts], [p[2] for p in parts]


@dataclass
class FastqScanner:
    source: str
    index: IndexDB
    offset: int = 0
    line: int = 1
    records: int = 0
    length_hist: Counter[int] = field(default_factory=Counter)
    quality_hist: Counter[int] = field(default_factory=Counter)
    totals: Counter[str] = field(default_factory=Counter)
    first_names: list[str] = field(default_factory=list)
    _carry: bytes = b""

    def feed(self, data: bytes) -> None:
        buf = self._carry + data if self._carry else data
        base = self.offset - len(self._carry)
        self.offset += len(data)
        lines = buf.split(b"\n")
        partial = lines.pop()
        whole = len(lines) // 4 * 4
        if not whole:
            if len(buf) > MAX_RECORD:
                self._fail("a record longer than 256 MiB", self.line)
            self._carry = buf
            return
        rest = lines[whole:]
        del lines[whole:]
        rest.append(partial)
        self._carry = b"\n".join(rest)
        self._records(lines, base)

    def finish(self) -> dict[str, Any]:
        if self._carry:
            lines = self._carry.split(b"\n")
            while lines and not lines[-1].strip():
                lines.pop()
            if len(lines) % 4:
                self._fail(
                    f"the file ends inside a record ({len(lines) % 4} of 4 lines; truncated?)",
                    self.line + len(lines) // 4 * 4,
                )
            self._records(lines, self.offset - len(self._carry))
            self._carry = b""
        return self.summary()

    def _records(self, lines: list[bytes], base: int) -> None:
        heads, seqs, pluses, quals = lines[0::4], lines[1::4], lines[2::4], lines[3::4]
        raw_seq_lengths = list(map(len, seqs))
        if self.records == 0 and heads and heads[0].endswith(b"\r"):
            self.totals["crlf"] = 1
        if self.totals["crlf"]:
            seqs = list(map(_strip_cr, seqs))
            quals = list(map(_strip_cr, quals))
        if not all(map(_is_header, heads)):
            i = next(i for i, h in enumerate(heads) if not h.startswith(b"@"))
            self._fail("expected an '@' header line", self.line + 4 * i)
        if not all(map(_is_plus, pluses)):
            i = next(i for i, p in enumerate(pluses) if not p.startswith(b"+"))
            self._fail(
                "expected a '+' separator line (multi-line FASTQ is not supported)",
                self.line + 4 * i + 2,
                heads[i],
            )
        lengths = list(map(len, seqs))
        quality_lengths = list(map(len, quals))
        if lengths != quality_lengths:
            i = next(compress(range(len(lengths)), map(ne, lengths, quality_lengths)))
            self._fail(
                f"the sequence has {lengths[i]} bases but the quality line has "
                f"{quality_lengths[i]} characters",
                self.line + 4 * i + 3,
                heads[i],
            )
        bases = b"".join(seqs)
        if bases.translate(None, SEQUENCE_BYTES):
            i = next(i for i, s in enumerate(seqs) if s.translate(None, SEQUENCE_BYTES))
            self._fail("sequence line holds a non-sequence byte", self.line + 4 * i + 1, heads[i])
        scores = b"".join(quals)
        if scores.translate(None, _QUALITY_BYTES):
            i = next(i for i, q in enumerate(quals) if q.translate(None, _QUALITY_BYTES))
            self._fail(
                "quality line holds a byte outside '!'..'~'", self.line + 4 * i + 3, heads[i]
            )
        self._count_qualities(scores)

        gc = list(
            map(add, map(methodcaller("count", b"G"), seqs), map(methodcaller("count", b"C"), seqs))
        )
        ns = list(map(methodcaller("count", b"N"), seqs))
        if bases.count(b"g") or bases.count(b"c") or bases.count(b"n"):
            gc = list(map(add, gc, map(methodcaller("count", b"g"), seqs)))
            gc = list(map(add, gc, map(methodcaller("count", b"c"), seqs)))
            ns = list(map(add, ns, map(methodcaller("count", b"n"), seqs)))
        self.totals["gc"] += sum(gc)
        self.totals["n"] += sum(ns)
        self.totals["reads_with_n"] += sum(map(bool, ns))
        self.length_hist.update(lengths)

        names, descriptions = _names(heads)
        if len(self.first_names) < 20:
            self.first_names.extend(names[: 20 - len(self.first_names)])
        starts = list(accumulate(map(add, map(len, lines), repeat(1)), initial=base))
        seq_offsets = starts[1::4]
        count = len(heads)
        first_rank = self.records
        self.index.add_records(
            zip(
                range(first_rank, first_rank + count),
                names,
                descriptions,
                range(self.line, self.line + 4 * count, 4),
                seq_offsets,
                map(add, seq_offsets, lengths),
                lengths,
                lengths,
                map(add, raw_seq_lengths, repeat(1)),
                gc,
                ns,
                repeat(0, count),
                repeat(0, count),
                strict=False,
            )
        )
        self.records += count
        self.line += 4 * count

    def _count_qualities(self, scores: bytes) -> None:
        known = self.quality_hist
        counted = 0
        for ch in list(known):
            c = scores.count(ch)
            known[ch] += c
            counted += c
        if counted < len(scores):
            for ch in set(scores) - set(known):
                known[ch] += scores.count(ch)

    def _fail(self, problem: str, line: int, header: bytes | None = None) -> None:
        record = split_header(header[1:])[0] if header else None
        raise FileFormatError(self.source, problem, line=line, record=record)

    def summary(self) -> dict[str, Any]:
        dist = length_distribution(self.length_hist)
        bases = dist.get("bases", 0)
        acgt = bases - self.totals["n"]
        offset = guess_quality_offset(self.quality_hist)
        return {
            "records": self.records,
            "alphabet": "nucleotide",
            "lengths": dist,
            "gc_fraction": round(self.totals["gc"] / acgt, 4) if acgt else 0.0,
            "n_bases": self.totals["n"],
            "reads_with_n": self.totals["reads_with_n"],
            "quality": quality_summary(self.quality_hist, offset),
            "first_names": self.first_names,
        }
