"""HCL (Terraform) parsing with line numbers, and a small evaluator for attribute expressions.

python-hcl2 8.x parses with lark and keeps positions (`propagate_positions=True`); its dict
serializer drops them, and its rule-object transformer costs as much as a third of the parse.
So the raw lark tree is walked here: every block and attribute keeps its line, and expressions
stay lark subtrees until the Terraform loader evaluates them in its scope.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import hcl2
from hcl2.utils import HEREDOC_PATTERN, HEREDOC_TRIM_PATTERN, process_escape_sequences
from lark import Token, Tree

from mezzo.threatscan.model import LineDict, Unknown

NEWLINE = "new_line_or_comment"
NAME_NODES = ("identifier", "keyword", "literal_value")


@dataclass
class Attribute:
    expression: Any  # a lark subtree
    line: int


@dataclass
class Block:
    type: str
    labels: tuple[str, ...]
    line: int
    attributes: dict[str, Attribute] = field(default_factory=dict)
    blocks: list[Block] = field(default_factory=list)

    def children(self, block_type: str) -> list[Block]:
        return [b for b in self.blocks if b.type == block_type]

    def line_of(self, name: str) -> int:
        attribute = self.attributes.get(name)
        return attribute.line if attribute else self.line


class HclError(ValueError):
    pass


def parse(text: str) -> list[Block]:
    """Parse one .tf file into its top-level blocks."""
    return parse_body(text)[1]


def parse_body(text: str) -> tuple[dict[str, Attribute], list[Block]]:
    """Parse one HCL file into its top-level attributes (a .tfvars file) and blocks."""
    try:
        tree = hcl2.parses_to_tree(text)
    except Exception as exc:  # lark raises many exception types for bad input
        raise HclError(_first_line(str(exc)) or type(exc).__name__) from None
    return _body_blocks(tree.children[0])


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def _subtrees(node: Tree) -> list[Tree]:
    return [c for c in node.children if isinstance(c, Tree) and c.data != NEWLINE]


def _line(node: Tree) -> int:
    return int(getattr(node.meta, "line", 0) or 0)


def _name(node: Tree) -> str:
    return str(next(node.scan_values(lambda v: isinstance(v, Token))))


def _body_blocks(body: Tree) -> tuple[dict[str, Attribute], list[Block]]:
    attributes: dict[str, Attribute] = {}
    blocks: list[Block] = []
    for child in _subtrees(body):
        if child.data == "attribute":
            attributes[_name(child.children[0])] = Attribute(child.children[-1], _line(child))
        elif child.data == "block":
            parts = _subtrees(child)
            inner_body = parts[-1]
            labels = [_label(p) for p in parts[:-1]]
            inner_attributes, inner_blocks = _body_blocks(inner_body)
            blocks.append(
                Block(labels[0], tuple(labels[1:]), _line(child), inner_attributes, inner_blocks)
            )
    return attributes, blocks


def _label(node: Tree) -> str:
    if node.data == "string":
        return "".join(
            str(part.children[0]) for part in _subtrees(node) if isinstance(part.children[0], Token)
        )
    return _name(node)


def source_text(node: Any) -> str:
    if isinstance(node, Token):
        return str(node)
    if isinstance(node, Tree):
        return "".join(str(t) for t in node.scan_values(lambda v: isinstance(v, Token)))
    return "?"


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


_FUNCTIONS: dict[str, Callable[[list[Any]], Any]] = {}
_LITERALS = {"true": True, "false": False, "null": None}


class Evaluator:
    """Evaluates expressions to Python values; what it cannot know becomes `Unknown`."""

    def __init__(self, resolve: Resolver, read_file: Callable[[str], str | None]) -> None:
        self._resolve = resolve
        self._read_file = read_file

    def value(self, node: Any) -> Any:
        if not isinstance(node, Tree):
            return Unknown(source_text(node))
        kind = node.data
        if kind == "expr_term":
            inner = _subtrees(node)
            return self.value(inner[0]) if len(inner) == 1 else Unknown(source_text(node))
        if kind == "string":
            return self._string(node)
        if kind == "int_lit":
            return int(str(node.children[0]))
        if kind == "float_lit":
            return float(str(node.children[0]))
        if kind == "literal_value":
            return _LITERALS.get(str(node.children[0]))
        if kind == "unary_op":
            operator, operand = node.children[0], node.children[-1]
            inner = self.value(operand)
            if (
                str(operator) == "-"
                and isinstance(inner, int | float)
                and not isinstance(inner, bool)
            ):
                return -inner
            if str(operator) == "!" and isinstance(inner, bool):
                return not inner
            return Unknown(source_text(node))
        if kind == "tuple":
            return [self.value(element) for element in _subtrees(node)]
        if kind == "object":
            return self._object(node)
        if kind in ("heredoc_template", "heredoc_template_trim"):
            return self._heredoc(str(node.children[0]))
        if kind == "function_call":
            return self._call(node)
        if kind == "conditional":
            condition, when_true, when_false = _subtrees(node)
            decided = self.value(condition)
            if isinstance(decided, bool):
                return self.value(when_true if decided else when_false)
            return unknown_of(source_text(node), decided)
        if kind == "binary_op":
            return self._binary(node)
        parts = reference_parts(node)
        if parts is not None:
            return self._resolve(parts)
        return Unknown(source_text(node))

    def _binary(self, node: Tree) -> Any:
        left_node, term = _subtrees(node)
        operator_node, right_node = _subtrees(term)
        operator = source_text(operator_node)
        left, right = self.value(left_node), self.value(right_node)
        if isinstance(left, Unknown) or isinstance(right, Unknown):
            return unknown_of(source_text(node), left, right)
        if operator == "==":
            return left == right
        if operator == "!=":
            return left != right
        if operator in ("&&", "||") and isinstance(left, bool) and isinstance(right, bool):
            return (left and right) if operator == "&&" else (left or right)
        return Unknown(source_text(node))

    def _string(self, node: Tree) -> Any:
        pieces: list[str] = []
        unknowns: list[Unknown] = []
        for part in _subtrees(node):
            content = part.children[0]
            if isinstance(content, Token):
                if content.type == "STRING_CHARS":
                    pieces.append(process_escape_sequences(str(content)))
                else:  # $${ and %%{ escapes
                    pieces.append(str(content)[1:])
            elif content.data == "interpolation":
                value = self.value(_subtrees(content)[0])
                if isinstance(value, Unknown):
                    unknowns.append(value)
                    pieces.append(value.template)
                elif isinstance(value, dict | list):
                    return Unknown(source_text(node))
                else:
                    pieces.append(_to_text(value))
            else:  # template directives (%{ if }) are not evaluated
                return Unknown(source_text(node))
        if unknowns:
            unknown = unknown_of(source_text(node), *unknowns)
            return Unknown(unknown.expression, unknown.names, "".join(pieces))
        return "".join(pieces)

    def _object(self, node: Tree) -> Any:
        result = LineDict(line=_line(node))
        for element in _subtrees(node):
            key_node, value_node = _subtrees(element)[0], _subtrees(element)[-1]
            key_inner = _subtrees(key_node)[0] if _subtrees(key_node) else key_node
            bare = _bare_identifier(key_inner)
            key = bare if bare is not None else self.value(key_inner)
            if isinstance(key, Unknown):
                return Unknown(source_text(node))
            text_key = _to_text(key)
            result[text_key] = self.value(value_node)
            result.key_lines[text_key] = _line(element)
        return result

    def _heredoc(self, raw: str) -> Any:
        match = (HEREDOC_TRIM_PATTERN if raw.startswith("<<-") else HEREDOC_PATTERN).match(raw)
        if not match:
            return Unknown("heredoc")
        body = match.group(2)
        if "%{" in body:
            return Unknown("heredoc with template directives")
        failed = False
        missing: list[Unknown] = []

        def substitute(found: re.Match[str]) -> str:
            nonlocal failed
            value = self._resolve(found.group(1).strip().split("."))
            if isinstance(value, Unknown | dict | list):
                failed = True
                if isinstance(value, Unknown):
                    missing.append(value)
                return ""
            return _to_text(value)

        text = re.sub(r"(?<!\$)\$\{([A-Za-z0-9_.\-]+)\}", substitute, body)
        if failed or re.search(r"(?<!\$)\$\{", text):
            return unknown_of("heredoc interpolation", *missing) if missing else Unknown("heredoc")
        return text.replace("$${", "${")

    def _call(self, node: Tree) -> Any:
        names = [_name(c) for c in _subtrees(node) if c.data == "identifier"]
        name = "::".join(names)
        arguments = next((c for c in _subtrees(node) if c.data == "arguments"), None)
        if arguments is not None and any(
            isinstance(t, Token) and t.type == "ELLIPSIS" for t in arguments.children
        ):
            return Unknown(source_text(node))
        values = [self.value(a) for a in _subtrees(arguments)] if arguments is not None else []
        if name == "file" and values and isinstance(values[0], str):
            text = self._read_file(values[0])
            return Unknown(source_text(node)) if text is None else text
        function = _FUNCTIONS.get(name)
        if function is None or any(isinstance(v, Unknown) for v in values):
            return unknown_of(source_text(node), *values)
        try:
            return function(values)
        except (TypeError, ValueError, KeyError, IndexError):
            return Unknown(source_text(node))


def _bare_identifier(node: Tree) -> str | None:
    """An object key written as a bare name (`Version = ...`) is the name, not a reference."""
    if node.data == "expr_term":
        inner = _subtrees(node)
        has_parens = any(isinstance(c, Token) and c.type == "LPAR" for c in node.children)
        return None if has_parens or len(inner) != 1 else _bare_identifier(inner[0])
    if node.data in NAME_NODES:
        return _name(node)
    return None


def reference_parts(node: Any) -> list[str] | None:
    """`aws_iam_role.admin[0].arn` -> ['aws_iam_role', 'admin', 'arn'] (indexes dropped)."""
    if not isinstance(node, Tree):
        return None
    kind = node.data
    if kind == "expr_term":
        inner = _subtrees(node)
        return reference_parts(inner[0]) if len(inner) == 1 else None
    if kind == "identifier":
        return [_name(node)]
    if kind == "get_attr_expr_term":
        base_node, get_attr = _subtrees(node)
        base = reference_parts(base_node)
        return None if base is None else [*base, _name(_subtrees(get_attr)[0])]
    if kind == "index_expr_term":
        return reference_parts(_subtrees(node)[0])
    if kind in ("attr_splat_expr_term", "full_splat_expr_term"):
        base_node, splat = _subtrees(node)
        base = reference_parts(base_node)
        if base is None:
            return None
        names = [_name(_subtrees(a)[0]) for a in _subtrees(splat) if a.data == "get_attr"]
        return [*base, *names]
    return None


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


_FUNCTIONS.update(
    {
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
        "format": lambda a: str(a[0]).replace("%s", "{}").format(*a[1:]),
        "tostring": lambda a: _to_text(a[0]),
        "trimspace": lambda a: str(a[0]).strip(),
    }
)
