"""CSV/TSV: dialect and header sniffing, a streaming scan with per-column statistics, row
checkpoints, and row fetches with filters."""

from __future__ import annotations

import csv
import io
import re
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import accumulate, chain, filterfalse, repeat, zip_longest
from operator import add, methodcaller
from typing import TYPE_CHECKING, Any

from mezzo.files.compression import ByteSource
from mezzo.files.conditions import Condition
from mezzo.files.errors import FileFormatError, QueryError
from mezzo.files.index_db import IndexDB
from mezzo.files.lines import MAX_RECORD_BYTES

if TYPE_CHECKING:
    from _csv import Reader

ROW_CHECKPOINT = 1024
STATS_BATCH = 4096
DISTINCT_CAP = 1000
csv.field_size_limit(1 << 26)


@dataclass(frozen=True)
class Dialect:
    delimiter: str
    has_header: bool

    def reader(self, lines: Iterable[str]) -> Reader:
        return csv.reader(lines, delimiter=self.delimiter)


def sniff_dialect(sample: str, default_delimiter: str) -> Dialect:
    sample = sample[: sample.rfind("\n") + 1] or sample
    sniffer = csv.Sniffer()
    try:
        delimiter = sniffer.sniff(sample, delimiters=",\t;|").delimiter
    except csv.Error:
        delimiter = default_delimiter
    if default_delimiter == "\t" and "\t" in sample:
        delimiter = "\t"
    try:
        has_header = sniffer.has_header(sample)
    except csv.Error:
        has_header = True
    rows = list(csv.reader(io.StringIO(sample), delimiter=delimiter))[:2]
    if len(rows) == 2 and not has_header:
        has_header = all(_kind(v) == "string" for v in rows[0]) and any(
            _kind(v) != "string" for v in rows[1]
        )
    return Dialect(delimiter, has_header)


def _kind(value: str) -> str:
    if not value:
        return "empty"
    try:
        int(value)
        return "int"
    except ValueError:
        pass
    try:
        float(value)
        return "float"
    except ValueError:
        return "string"


_strip_sign = methodcaller("lstrip", "+-")
_numberish = re.compile(r"\s*[+-]?(?:\d|\.\d|inf|nan|infinity)", re.IGNORECASE).match


@dataclass
class ColumnStats:
    name: str
    non_empty: int = 0
    empty: int = 0
    ints: int = 0
    floats: int = 0
    total: float = 0.0
    minimum: float | None = None
    maximum: float | None = None
    min_text: str | None = None
    max_text: str | None = None
    values: Counter[str] = field(default_factory=Counter)
    distinct_overflow: bool = False

    def observe(self, values: list[str]) -> None:
        """Fold a batch of this column's cells in, with C-level passes where possible."""
        present = list(filter(None, values))
        self.empty += len(values) - len(present)
        if not present:
            return
        self.non_empty += len(present)
        try:
            numbers, numeric, texts = list(map(float, present)), present, []
        except ValueError:
            numbers, numeric = [], []
            texts = list(filterfalse(_numberish, present))  # cheap pre-filter, no exceptions
            for value in filter(_numberish, present):
                try:
                    numbers.append(float(value))
                    numeric.append(value)
                except ValueError:
                    texts.append(value)
        if numbers:
            ints = sum(map(str.isdigit, map(_strip_sign, numeric)))
            self.ints += ints
            self.floats += len(numbers) - ints
            self.total += sum(numbers)
            low, high = min(numbers), max(numbers)
            self.minimum = low if self.minimum is None else min(self.minimum, low)
            self.maximum = high if self.maximum is None else max(self.maximum, high)
        if texts:
            low_text, high_text = min(texts), max(texts)
            self.min_text = low_text if self.min_text is None else min(self.min_text, low_text)
            self.max_text = high_text if self.max_text is None else max(self.max_text, high_text)
        if self.distinct_overflow:
            self.values.update(filter(self.values.__contains__, present))
            return
        self.values.update(present)
        if len(self.values) > DISTINCT_CAP:
            self.distinct_overflow = True
            self.values = Counter(dict(self.values.most_common(DISTINCT_CAP)))

    def summary(self) -> dict[str, Any]:
        numbers = self.ints + self.floats
        if self.non_empty == 0:
            kind = "empty"
        elif numbers == self.non_empty:
            kind = "int" if self.floats == 0 else "float"
        elif numbers >= 0.9 * self.non_empty:
            kind = "mostly numeric"
        else:
            kind = "string"
        out: dict[str, Any] = {"name": self.name, "type": kind, "empty": self.empty}
        if numbers:
            out.update(min=self.minimum, max=self.maximum, mean=round(self.total / numbers, 6))
        if self.min_text is not None:
            out.update(min_text=self.min_text[:80], max_text=(self.max_text or "")[:80])
        distinct = len(self.values)
        out["distinct"] = f">{DISTINCT_CAP}" if self.distinct_overflow else distinct
        if kind == "string" or distinct <= 20:
            out["top"] = [[v[:80], c] for v, c in self.values.most_common(5)]
            if self.distinct_overflow:
                out["top_is_approximate"] = True
        return out


class RowReader:
    """CSV rows from a byte stream. Lines are decoded a block at a time and handed to one
    `csv.reader` (quoted newlines may span blocks); byte offsets are computed per block with
    C-level passes and looked up only for the rows that need one (`offset_of`)."""

    def __init__(
        self, chunks: Iterable[bytes], dialect: Dialect, source: str, start_offset: int = 0
    ) -> None:
        self._chunks = chunks
        self._dialect = dialect
        self._source = source
        self._start = start_offset
        self._loaded_lines = 0
        self._loaded_end = start_offset
        self._recent: deque[tuple[int, int, list[int]]] = deque(maxlen=4)

    def offset_of(self, line_index: int) -> int:
        """Byte offset of the line `line_index` (0-based, counted from the start offset)."""
        if line_index >= self._loaded_lines:
            return self._loaded_end
        for first, offset, starts in reversed(self._recent):
            if line_index >= first:
                return offset + starts[line_index - first]
        raise ValueError(f"line {line_index} is no longer buffered")

    def __iter__(self) -> Iterator[tuple[int, list[str]]]:
        """(index of the row's first line, cells) for every row, header included."""
        reader = self._dialect.reader(chain.from_iterable(self._blocks()))
        first = True
        while True:
            line_index = reader.line_num
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise FileFormatError(
                    self._source, f"cannot parse CSV: {exc}", line=reader.line_num
                ) from None
            if first and self._start == 0 and row and row[0].startswith("\ufeff"):
                row[0] = row[0][1:]
            first = False
            yield line_index, row

    def _blocks(self) -> Iterator[list[str]]:
        carry = b""
        for chunk in self._chunks:
            buf = carry + chunk if carry else chunk
            cut = buf.rfind(b"\n") + 1
            carry = buf[cut:]
            if len(carry) > MAX_RECORD_BYTES:
                raise FileFormatError(
                    self._source,
                    f"a line longer than {MAX_RECORD_BYTES} bytes: not a table this reader takes",
                    line=self._loaded_lines + 1,
                )
            if cut:
                yield self._load(buf[:cut])
        if carry:
            yield self._load(carry + b"\n")

    def _load(self, block: bytes) -> list[str]:
        raw = block.split(b"\n")
        raw.pop()
        starts = list(accumulate(map(add, map(len, raw), repeat(1)), initial=0))
        self._recent.append((self._loaded_lines, self._loaded_end, starts))
        self._loaded_lines += len(raw)
        self._loaded_end += len(block)
        lines = block.decode("utf-8", errors="replace").split("\n")
        lines.pop()
        return [line + "\n" for line in lines]


@dataclass
class TableScanner:
    source: str
    index: IndexDB
    dialect: Dialect

    def run(self, chunks: Iterable[bytes]) -> dict[str, Any]:
        rows = RowReader(chunks, self.dialect, self.source)
        columns: list[ColumnStats] = []
        header: list[str] = []
        count = 0
        ragged = 0
        first_ragged: int | None = None
        batch: list[list[str]] = []
        for line_index, row in rows:
            if not columns:
                header = row if self.dialect.has_header else [f"c{i + 1}" for i in range(len(row))]
                columns = [ColumnStats(name) for name in header]
                if self.dialect.has_header:
                    continue
            if not row:
                continue
            count += 1
            if count % ROW_CHECKPOINT == 1:
                self.index.add_checkpoint(count, rows.offset_of(line_index))
            if len(row) != len(columns):
                ragged += 1
                first_ragged = first_ragged or line_index + 1
            batch.append(row)
            if len(batch) >= STATS_BATCH:
                _observe(columns, batch)
                batch = []
        _observe(columns, batch)
        self.index.set_meta(
            "table",
            {
                "delimiter": self.dialect.delimiter,
                "has_header": self.dialect.has_header,
                "columns": header,
            },
        )
        return {
            "rows": count,
            "delimiter": self.dialect.delimiter,
            "has_header": self.dialect.has_header,
            "columns": [c.summary() for c in columns],
            "ragged_rows": ragged,
            "first_ragged_line": first_ragged,
        }


def _observe(columns: list[ColumnStats], rows: list[list[str]]) -> None:
    """Column-wise statistics for a batch of rows; a missing cell counts as empty."""
    if rows:
        for stats, cells in zip(columns, zip_longest(*rows, fillvalue=""), strict=False):
            stats.observe(list(cells))


@dataclass
class TableQuery:
    name: str
    source: ByteSource
    index: IndexDB
    size: int
    rows: int

    @property
    def layout(self) -> dict[str, Any]:
        return self.index.meta("table")

    @property
    def columns(self) -> list[str]:
        return list(self.layout["columns"])

    def _dialect(self) -> Dialect:
        layout = self.layout
        return Dialect(layout["delimiter"], layout["has_header"])

    def iter_data_rows(self, first_row: int = 1) -> Iterator[tuple[int, list[str]]]:
        """(row number, cells) from `first_row` (1-based, header excluded)."""
        number, offset = self.index.checkpoint_at(first_row)
        layout = self.layout
        skip_header = layout["has_header"] and offset == 0
        chunks = self.source.iter_range(offset, self.size, 1 << 20)
        for _, row in RowReader(chunks, self._dialect(), self.name, offset):
            if skip_header:
                skip_header = False
                continue
            if not row:
                continue
            if number >= first_row:
                yield number, row
            number += 1

    def select(
        self, conditions: list[Condition], first_row: int = 1
    ) -> Iterator[tuple[int, list[str]]]:
        if first_row < 1:
            raise QueryError(self.name, "rows are numbered from 1")
        if first_row > max(self.rows, 1):
            raise QueryError(self.name, f"row {first_row} is out of range: {self.rows} rows")
        columns = self.columns
        positions = [columns.index(c.column) for c in conditions]
        for number, row in self.iter_data_rows(first_row):
            if all(
                c.test(row[i] if i < len(row) else None)
                for c, i in zip(conditions, positions, strict=True)
            ):
                yield number, row
