"""Line-addressed access shared by text, CSV and JSON Lines: checkpoints and line iteration.

While a file is scanned, `LineCheckpointer` stores (line number, byte offset) for the first
line that starts after every `spacing` bytes. Line L is then reached by one index lookup and a
scan of at most `spacing` bytes plus one chunk.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from mezzo.files.compression import ByteSource
from mezzo.files.index_db import IndexDB

CHECKPOINT_SPACING = 1 << 20


@dataclass
class LineCheckpointer:
    index: IndexDB
    spacing: int = CHECKPOINT_SPACING
    offset: int = 0
    line: int = 1  # number of the line holding the next byte
    at_line_start: bool = True
    _last: int = -(1 << 62)

    def feed(self, data: bytes) -> None:
        if self.offset - self._last >= self.spacing:
            if self.at_line_start:
                self._mark(self.line, self.offset)
            else:
                nl = data.find(b"\n")
                if nl >= 0:
                    self._mark(self.line + 1, self.offset + nl + 1)
        self.line += data.count(b"\n")
        self.offset += len(data)
        if data:
            self.at_line_start = data[-1] == 10

    def _mark(self, line: int, offset: int) -> None:
        self.index.add_checkpoint(line, offset)
        self._last = offset

    @property
    def total_lines(self) -> int:
        return self.line - 1 if self.at_line_start else self.line


MAX_LINE_BYTES = 1 << 20  # most of one line a query holds; the rest is skipped
MAX_RECORD_BYTES = 16 << 20  # longest CSV row / JSON Lines record a scan accepts (whole)


def line_groups(
    chunks: Iterable[bytes], max_line: int = MAX_LINE_BYTES
) -> Iterator[tuple[list[bytes], list[int]]]:
    """The lines of a byte stream (without their newlines), one group per chunk read:
    (lines cut to `max_line` bytes, their full lengths). A line longer than `max_line` is cut
    while streaming, so memory stays bounded whatever the line lengths are."""
    carry = b""
    carry_len = 0  # full length of the unfinished line, of which `carry` is the kept part
    for chunk in chunks:
        parts = chunk.split(b"\n")
        last = parts.pop()
        if not parts:
            if len(carry) < max_line:
                carry += last[: max_line - len(carry)]
            carry_len += len(last)
            continue
        lengths = list(map(len, parts))
        if carry_len:
            parts[0] = carry + parts[0][: max(0, max_line - len(carry))]
            lengths[0] += carry_len
        if max(lengths) > max_line:
            parts = [part[:max_line] for part in parts]
        yield parts, lengths
        carry, carry_len = last[:max_line], len(last)
    if carry_len:
        yield [carry], [carry_len]


def split_lines(
    chunks: Iterable[bytes], start_offset: int = 0, max_line: int = MAX_LINE_BYTES
) -> Iterator[tuple[int, bytes, int]]:
    """(offset, line cut to `max_line` bytes, the line's full length) for each line."""
    offset = start_offset
    for lines, lengths in line_groups(chunks, max_line):
        for line, length in zip(lines, lengths, strict=True):
            yield offset, line, length
            offset += length + 1


def lines_from(
    source: ByteSource,
    index: IndexDB,
    first_line: int,
    end_offset: int,
    max_line: int = MAX_LINE_BYTES,
) -> Iterator[tuple[int, bytes, int]]:
    """(line number, line cut to `max_line`, full length) from `first_line` (1-based) on."""
    number, offset = index.checkpoint_at(first_line)
    chunks = source.iter_range(offset, end_offset, 1 << 20)
    for _, line, length in split_lines(chunks, offset, max_line):
        if number >= first_line:
            yield number, line, length
        number += 1
