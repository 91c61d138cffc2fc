"""Evaluate HCL expression trees (`hcl.Expr`) to Python values; what cannot be known is `Unknown`.

Unknown values name what they depend on (`var.x`, `aws_instance.web.private_ip`), and a string
built from known and unknown parts keeps its known parts (`arn:aws:s3:::\\x01/*`).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

from mezzo.threatscan.hcl import Expr
from mezzo.threatscan.model import LineDict, Unknown

Resolver = Callable[[list[str]], Any]


def unknown_of(expression: str, *parts: Any) -> Unknown:
    """An Unknown that depends on every unresolved name found in `parts`."""
    names: list[str] = []
    for part in parts:
        for name in _unknown_names(part):
            if name not in names:
                names.append(name)
    return Unknown(expression, tuple(names))


def _unknown_names(value: Any) -> list[str]:
    if isinstance(value, Unknown):
        return list(value.depends)
    if isinstance(value, dict):
        return [n for v in value.values() for n in _unknown_names(v)]
    if isinstance(value, list):
        return [n for v in value for n in _unknown_names(v)]
    return []


class Evaluator:
    """Evaluates expressions to Python values; what it cannot know becomes `Unknown`."""

    def __init__(self, resolve: Resolver, read_file: Callable[[str], str | None]) -> None:
        self._resolve = resolve
        self._read_file = read_file

    def value(self, expr: Expr) -> Any:
        tag = expr[0]
        if tag == "lit":
            return expr[1]
        if tag == "ref":
            return self._resolve(list(expr[1]))
        if tag == "tmpl":
            return self._template(expr[1], expr[2])
        if tag == "tuple":
            return [self.value(item) for item in expr[1]]
        if tag == "object":
            return self._object(expr[1], expr[2])
        if tag == "call":
            return self._call(expr[1], expr[2], expr[3], expr[4])
        if tag == "cond":
            decided = self.value(expr[1])
            if isinstance(decided, bool):
                return self.value(expr[2] if decided else expr[3])
            return unknown_of(expr[4], decided)
        if tag == "binop":
            return self._binary(expr[1], expr[2], expr[3], expr[4])
        if tag == "unop":
            inner = self.value(expr[2])
            if expr[1] == "-" and isinstance(inner, int | float) and not isinstance(inner, bool):
                return -inner
            if expr[1] == "!" and isinstance(inner, bool):
                return not inner
            return unknown_of(expr[3], inner)
        return Unknown(str(expr[-1]))

    def _binary(self, operator: str, left_expr: Expr, right_expr: Expr, text: str) -> Any:
        left, right = self.value(left_expr), self.value(right_expr)
        if isinstance(left, Unknown) or isinstance(right, Unknown):
            return unknown_of(text, left, right)
        if operator == "==":
            return left == right
        if operator == "!=":
            return left != right
        if operator in ("&&", "||") and isinstance(left, bool) and isinstance(right, bool):
            return (left and right) if operator == "&&" else (left or right)
        return Unknown(text)

    def _template(self, parts: list[Any], text: str) -> Any:
        pieces: list[str] = []
        unknowns: list[Unknown] = []
        for part in parts:
            if isinstance(part, str):
                pieces.append(part)
                continue
            value = self.value(part)
            if isinstance(value, Unknown):
                unknowns.append(value)
                pieces.append(value.template)
            elif isinstance(value, dict | list):
                return Unknown(text)
            else:
                pieces.append(_to_text(value))
        if unknowns:
            unknown = unknown_of(text, *unknowns)
            return Unknown(unknown.expression, unknown.names, "".join(pieces))
        return "".join(pieces)

    def _object(self, elements: list[tuple[Any, Expr, int]], line: int) -> Any:
        result = LineDict(line=line)
        for key_expr, value_expr, element_line in elements:
            key = key_expr[1] if key_expr[0] == "name" else self.value(key_expr)
            if isinstance(key, Unknown):
                return Unknown("object with an unresolved key")
            text_key = _to_text(key)
            result[text_key] = self.value(value_expr)
            result.key_lines[text_key] = element_line
        return result

    def _call(self, name: str, arguments: list[Expr], expanded: bool, text: str) -> Any:
        if expanded:
            return Unknown(text)
        values = [self.value(a) for a in arguments]
        if name == "file" and values and isinstance(values[0], str):
            content = self._read_file(values[0])
            return Unknown(text) if content is None else content
        function = _FUNCTIONS.get(name)
        if function is None or any(isinstance(v, Unknown) for v in values):
            return unknown_of(text, *values)
        try:
            return function(values)
        except (TypeError, ValueError, KeyError, IndexError, AttributeError):
            return Unknown(text)


def _to_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _flatten(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for value in values:
        out.extend(_flatten(value) if isinstance(value, list) else [value])
    return out


def _merge(values: list[Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for value in values:
        merged.update(value)
    return merged


def _distinct(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for value in values:
        if value not in out:
            out.append(value)
    return out


_FUNCTIONS: dict[str, Callable[[list[Any]], Any]] = {
    "jsonencode": lambda a: a[0],
    "jsondecode": lambda a: json.loads(a[0]),
    "concat": lambda a: [item for lst in a for item in lst],
    "flatten": lambda a: _flatten(a[0]),
    "merge": _merge,
    "tolist": lambda a: list(a[0]),
    "toset": lambda a: _distinct(list(a[0])),
    "distinct": lambda a: _distinct(list(a[0])),
    "compact": lambda a: [v for v in a[0] if v not in ("", None)],
    "lower": lambda a: str(a[0]).lower(),
    "upper": lambda a: str(a[0]).upper(),
    "join": lambda a: str(a[0]).join(_to_text(v) for v in a[1]),
    "format": lambda a: str(a[0]).replace("%s", "{}").replace("%d", "{}").format(*a[1:]),
    "tostring": lambda a: _to_text(a[0]),
    "trimspace": lambda a: str(a[0]).strip(),
    "coalesce": lambda a: next(v for v in a if v not in ("", None)),
    "lookup": lambda a: a[0].get(a[1], a[2] if len(a) > 2 else None),
    "element": lambda a: a[0][int(a[1]) % len(a[0])],
    "replace": lambda a: str(a[0]).replace(str(a[1]), str(a[2])),
    "base64encode": lambda a: base64.b64encode(str(a[0]).encode()).decode(),
}
