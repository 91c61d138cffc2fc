"""Row filters for tables and JSON Lines: `column op value`, all of them must hold."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from mezzo.files.errors import QueryError
from mezzo.files.regex import Matcher, compile_pattern

_CONDITION_RE = re.compile(r"^\s*(.+?)\s*(==|!=|<=|>=|<|>|~|=)\s*(.*?)\s*$")
OPERATORS = ("==", "!=", "<", "<=", ">", ">=", "~")


def as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


@dataclass(frozen=True)
class Condition:
    column: str
    op: str
    value: str

    def test(self, cell: Any) -> bool:
        if cell is None:
            return self.op == "!="
        if self.op == "~":
            return self._regex.search(str(cell).encode(errors="replace")) is not None
        left, right = as_number(cell), as_number(self.value)
        if left is None or right is None:
            left_s: Any = cell if isinstance(cell, str) else _json_text(cell)
            return _compare(left_s, self.op, self.value)
        return _compare(left, self.op, right)

    @functools.cached_property
    def _regex(self) -> Matcher:
        return compile_pattern(self.column, self.value)


def _json_text(cell: Any) -> str:
    if cell is True:
        return "true"
    if cell is False:
        return "false"
    return str(cell)


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _compare(left: Any, op: str, right: Any) -> bool:
    return _COMPARE[op](left, right)


def parse_conditions(name: str, texts: Sequence[str], columns: Sequence[str] | None) -> list:
    conditions: list[Condition] = []
    for text in texts:
        match = _CONDITION_RE.match(text)
        if not match:
            raise QueryError(
                name,
                f"cannot read condition {text!r}; write `column op value` with op one of "
                f"{' '.join(OPERATORS)}",
            )
        column, op, value = match.groups()
        op = "==" if op == "=" else op
        value = value.strip("'\"") if len(value) >= 2 and value[0] == value[-1] in "'\"" else value
        if columns is not None and column not in columns:
            raise QueryError(name, f"no column {column!r}; columns are: {', '.join(columns[:50])}")
        if op == "~":
            compile_pattern(name, value)
        conditions.append(Condition(column, op, value))
    return conditions
