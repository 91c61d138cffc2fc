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


def split_lines(chunks: Iterable[bytes], start_offset: int = 0) -> Iterator[tuple[int, bytes]]:
    """(offset, line without its newline) for each line of a byte stream."""
    carry = b""
    offset = start_offset
    for chunk in chunks:
        buf = carry + chunk if carry else chunk
        parts = buf.split(b"\n")
        carry = parts.pop()
        for part in parts:
            yield offset, part
            offset += len(part) + 1
    if carry:
        yield offset, carry


def lines_from(
    source: ByteSource, index: IndexDB, first_line: int, end_offset: int
) -> Iterator[tuple[int, bytes]]:
    """(line number, line) from `first_line` (1-based) to the end."""
    number, offset = index.checkpoint_at(first_line)
    for _, line in split_lines(source.iter_range(offset, end_offset, 1 << 20), offset):
        if number >= first_line:
            yield number, line
        number += 1
