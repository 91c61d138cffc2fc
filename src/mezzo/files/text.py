"""Plain text and logs: a streaming scan (lines, levels, checkpoints) and grep/head/tail/slice."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from mezzo.files.compression import ByteSource
from mezzo.files.errors import FileFormatError, QueryError
from mezzo.files.index_db import IndexDB
from mezzo.files.lines import MAX_LINE_BYTES, LineCheckpointer, line_groups, lines_from
from mezzo.files.regex import compile_pattern

# Log levels are counted as occurrences of the upper-case word anywhere (one C-level count
# each, no regex): "WARN" includes "WARNING", and a message quoting "ERROR" counts too.
LEVEL_WORDS = (b"FATAL", b"CRITICAL", b"ERROR", b"WARN", b"INFO", b"DEBUG", b"TRACE")
PREVIEW_CHARS = 200


def decode(line: bytes) -> str:
    return line.rstrip(b"\r").decode("utf-8", errors="replace")


@dataclass
class TextScanner:
    source: str
    index: IndexDB
    levels: Counter[str] = field(default_factory=Counter)
    max_line: int = 0
    first_line: str | None = None
    last_line: str = ""
    invalid_utf8: bool = False
    _lines: LineCheckpointer = field(init=False)
    _carry: bytes = b""

    def __post_init__(self) -> None:
        self._lines = LineCheckpointer(self.index)

    def run(self, chunks: Iterable[bytes]) -> dict[str, Any]:
        for chunk in chunks:
            self.feed(chunk)
        return self.finish()

    def feed(self, data: bytes) -> None:
        nul = data.find(b"\x00")
        if nul >= 0:
            line = self._lines.line + data.count(b"\n", 0, nul)
            raise FileFormatError(self.source, "a NUL byte: binary data in a text file", line=line)
        self._lines.feed(data)
        buf = self._carry + data if self._carry else data
        cut = buf.rfind(b"\n") + 1
        whole, self._carry = buf[:cut], buf[cut:]
        if len(self._carry) > 1 << 20:
            self.max_line = max(self.max_line, len(self._carry))
            self._carry = self._carry[-PREVIEW_CHARS * 4 :]
        if whole:
            self._whole_lines(whole)

    def _whole_lines(self, block: bytes) -> None:
        lines = block.split(b"\n")
        lines.pop()
        self.max_line = max(self.max_line, max(map(len, lines)))
        if self.first_line is None:
            self.first_line = decode(lines[0][: PREVIEW_CHARS * 4])
        self.last_line = decode(lines[-1][-PREVIEW_CHARS * 4 :])
        for word in LEVEL_WORDS:
            if word in block:
                self.levels[word.decode()] += block.count(word)
        if not self.invalid_utf8:
            try:
                block.decode("utf-8")
            except UnicodeDecodeError:
                self.invalid_utf8 = True

    def finish(self) -> dict[str, Any]:
        if self._carry:
            self._whole_lines(self._carry + b"\n")
        return {
            "lines": self._lines.total_lines,
            "longest_line": self.max_line,
            "level_words": dict(self.levels.most_common()),
            "first_line": (self.first_line or "")[:PREVIEW_CHARS],
            "last_line": self.last_line[:PREVIEW_CHARS],
            "utf8": not self.invalid_utf8,
        }


def cut_marker(length: int) -> str:
    return f"… [line cut: {length} bytes in all]"


def shown_line(line: bytes, length: int) -> str:
    """A line as a tool shows it; one that was cut while reading says so."""
    text = decode(line)
    return text if length == len(line) else text + cut_marker(length)


@dataclass
class TextQuery:
    name: str
    source: ByteSource
    index: IndexDB
    size: int
    total_lines: int | None  # None when the scan did not count lines (sequence, table files)
    max_line: int = MAX_LINE_BYTES

    def lines(self, start: int, end: int) -> Iterator[tuple[int, bytes, int]]:
        """(number, line cut to `max_line` bytes, full length) for lines start..end,
        1-based inclusive."""
        if start < 1 or end < start:
            raise QueryError(self.name, f"bad line range {start}-{end}: lines are 1-based")
        if self.total_lines is not None and start > self.total_lines:
            raise QueryError(
                self.name, f"line {start} is out of range: the file has {self.total_lines} lines"
            )
        found = False
        for number, line, length in lines_from(
            self.source, self.index, start, self.size, self.max_line
        ):
            if number > end:
                return
            found = True
            yield number, line, length
        if not found:
            raise QueryError(self.name, f"line {start} is out of range: the file is shorter")

    def grep(
        self, pattern: str, ignore_case: bool = False, invert: bool = False
    ) -> Iterator[tuple[int, bytes, int]]:
        """(number, line cut to `max_line` bytes, full length) of each matching line; the first
        `max_line` bytes of a line are what is searched."""
        regex = compile_pattern(self.name, pattern, ignore_case=ignore_case)
        block = None
        if not invert and "\\A" not in pattern and "\\z" not in pattern:
            block = compile_pattern(self.name, pattern, ignore_case=ignore_case, lines=True)
        number = 1
        chunks = self.source.iter_range(0, self.size, 1 << 20)
        for lines, lengths in line_groups(chunks, self.max_line):
            # one search per chunk skips the chunks without a match, which are most of them
            if block is None or block.search(b"\n".join(lines)) is not None:
                for i, line in enumerate(lines):
                    if (regex.search(line) is None) == invert:
                        yield number + i, line, lengths[i]
            number += len(lines)
