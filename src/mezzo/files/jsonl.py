"""JSON Lines: every non-blank line must be JSON; the scan tallies top-level keys and types."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from mezzo.files.compression import ByteSource
from mezzo.files.conditions import Condition
from mezzo.files.errors import FileFormatError, QueryError
from mezzo.files.index_db import IndexDB
from mezzo.files.lines import LineCheckpointer, lines_from, split_lines

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


@dataclass
class JsonlScanner:
    source: str
    index: IndexDB
    keys: Counter[str] = field(default_factory=Counter)
    types: dict[str, Counter[str]] = field(default_factory=dict)
    top_types: Counter[str] = field(default_factory=Counter)

    def run(self, chunks: Iterable[bytes]) -> dict[str, Any]:
        checkpoints = LineCheckpointer(self.index)

        def counted() -> Iterator[bytes]:
            for chunk in chunks:
                checkpoints.feed(chunk)
                yield chunk

        records = blank = 0
        number = 0
        for number, (_, line) in enumerate(split_lines(counted()), start=1):
            if not line.strip():
                blank += 1
                continue
            try:
                value = json.loads(line)
            except ValueError as exc:
                raise FileFormatError(self.source, f"not JSON: {exc}", line=number) from None
            records += 1
            self.top_types[json_type(value)] += 1
            if isinstance(value, dict):
                for key, item in value.items():
                    if key in self.types or len(self.types) < KEY_CAP:
                        self.keys[key] += 1
                        self.types.setdefault(key, Counter())[json_type(item)] += 1
        return {
            "records": records,
            "lines": number,
            "blank_lines": blank,
            "types": dict(self.top_types),
            "keys": [
                {"key": key, "present": count, "types": dict(self.types[key].most_common())}
                for key, count in self.keys.most_common()
            ],
        }


@dataclass
class JsonlQuery:
    name: str
    source: ByteSource
    index: IndexDB
    size: int
    total_lines: int

    def records(
        self, conditions: list[Condition], first_line: int = 1
    ) -> Iterator[tuple[int, str]]:
        if first_line < 1 or first_line > max(self.total_lines, 1):
            raise QueryError(
                self.name, f"line {first_line} is out of range: {self.total_lines} lines"
            )
        for number, line in lines_from(self.source, self.index, first_line, self.size):
            if not line.strip():
                continue
            text = line.decode("utf-8", errors="replace")
            if conditions:
                value = json.loads(text)
                if not all(c.test(lookup(value, c.column)) for c in conditions):
                    continue
            yield number, text
