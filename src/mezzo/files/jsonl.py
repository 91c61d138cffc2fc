"""JSON Lines: every non-blank line must be JSON; the scan tallies top-level keys and types."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain
from typing import Any, NoReturn

from mezzo.files.compression import ByteSource
from mezzo.files.conditions import Condition
from mezzo.files.errors import FileFormatError, QueryError
from mezzo.files.index_db import IndexDB
from mezzo.files.lines import MAX_LINE_BYTES, MAX_RECORD_BYTES, LineCheckpointer, lines_from
from mezzo.files.text import shown_line

KEY_CAP = 200


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def lookup(record: Any, path: str) -> Any:
    """Value at a dotted path (`a.b.0`), or None."""
    value = record
    for part in path.split("."):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


_TYPE_NAMES = {
    type(None): "null", bool: "bool", int: "int", float: "float", str: "string",
    list: "array", dict: "object",
}  # fmt: skip


@dataclass
class JsonlScanner:
    """Parses each block of lines as one JSON array (one C call), and tallies keys and value
    types with C-level counters; a block that fails is re-parsed line by line to name the line."""

    source: str
    index: IndexDB
    key_types: Counter[tuple[str, type]] = field(default_factory=Counter)
    top_types: Counter[type] = field(default_factory=Counter)
    records: int = 0
    blank: int = 0

    def run(self, chunks: Iterable[bytes]) -> dict[str, Any]:
        checkpoints = LineCheckpointer(self.index)
        carry = b""
        for chunk in chunks:
            first_line = checkpoints.line - carry.count(b"\n")
            checkpoints.feed(chunk)
            buf = carry + chunk if carry else chunk
            cut = buf.rfind(b"\n") + 1
            carry = buf[cut:]
            if len(carry) > MAX_RECORD_BYTES:
                raise FileFormatError(
                    self.source,
                    f"a JSON Lines record longer than {MAX_RECORD_BYTES} bytes",
                    line=checkpoints.line,
                )
            if cut:
                self._block(buf[:cut].split(b"\n")[:-1], first_line)
        if carry:
            self._block([carry], checkpoints.line)
        keys: dict[str, Counter[str]] = {}
        for (key, kind), count in self.key_types.items():
            keys.setdefault(key, Counter())[_TYPE_NAMES.get(kind, kind.__name__)] += count
        ranked = sorted(keys.items(), key=lambda item: -sum(item[1].values()))
        return {
            "records": self.records,
            "lines": checkpoints.total_lines,
            "blank_lines": self.blank,
            "types": {_TYPE_NAMES.get(t, t.__name__): c for t, c in self.top_types.items()},
            "keys": [
                {"key": key, "present": sum(types.values()), "types": dict(types.most_common())}
                for key, types in ranked
            ],
            "keys_capped": len(keys) >= KEY_CAP,
        }

    def _block(self, lines: list[bytes], first_line: int) -> None:
        present = list(filter(None, map(bytes.strip, lines)))
        self.blank += len(lines) - len(present)
        if not present:
            return
        try:
            values = json.loads(b"[" + b",".join(present) + b"]")
        except (ValueError, RecursionError):
            values = None
        if values is None or len(values) != len(present):
            self._find_bad_line(lines, first_line)
        self.records += len(values)
        self.top_types.update(map(type, values))
        objects = [v for v in values if type(v) is dict]
        pairs = zip(
            chain.from_iterable(map(dict.keys, objects)),
            map(type, chain.from_iterable(map(dict.values, objects))),
            strict=True,
        )
        if len(self.key_types) < KEY_CAP * 4:
            self.key_types.update(pairs)
        else:  # many distinct keys: keep counting the ones already seen
            self.key_types.update(filter(self.key_types.__contains__, pairs))

    def _find_bad_line(self, lines: list[bytes], first_line: int) -> NoReturn:
        for number, line in enumerate(lines, start=first_line):
            if not line.strip():
                continue
            try:
                json.loads(line)
            except ValueError as exc:
                raise FileFormatError(self.source, f"not JSON: {exc}", line=number) from None
            except RecursionError:
                raise FileFormatError(
                    self.source, "JSON nested too deeply to read", line=number
                ) from None
        raise FileFormatError(self.source, "a block of lines is not JSON Lines", line=first_line)


@dataclass
class JsonlQuery:
    name: str
    source: ByteSource
    index: IndexDB
    size: int
    total_lines: int
    max_line: int = MAX_LINE_BYTES

    def records(
        self, conditions: list[Condition], first_line: int = 1
    ) -> Iterator[tuple[int, str]]:
        if first_line < 1 or first_line > max(self.total_lines, 1):
            raise QueryError(
                self.name, f"line {first_line} is out of range: {self.total_lines} lines"
            )
        lines = lines_from(self.source, self.index, first_line, self.size, self.max_line)
        for number, line, length in lines:
            if not line.strip():
                continue
            if conditions:
                if length != len(line):
                    continue  # longer than max_line: not read whole, so it cannot be tested
                try:
                    value = json.loads(line)
                except (ValueError, RecursionError):
                    continue
                if not all(c.test(lookup(value, c.column)) for c in conditions):
                    continue
            yield number, shown_line(line, length)
