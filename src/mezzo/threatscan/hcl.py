"""HCL (Terraform) parsing with line numbers, and a small evaluator for attribute expressions.

python-hcl2 8.x builds a rule tree whose nodes keep lark position metadata (`_meta.line`); its
dict serializer drops it, so the blocks are walked here and every block and attribute keeps its
line. Expressions stay as rule trees until the Terraform loader evaluates them in its scope.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import hcl2
from hcl2.rules.abstract import LarkRule, LarkToken
from hcl2.rules.base import AttributeRule, BlockRule
from hcl2.rules.containers import ObjectElemKeyExpressionRule, ObjectRule, TupleRule
from hcl2.rules.expressions import ExprTermRule, UnaryOpRule
from hcl2.rules.functions import FunctionCallRule
from hcl2.rules.indexing import (
    AttrSplatExprTermRule,
    FullSplatExprTermRule,
    GetAttrExprTermRule,
    IndexExprTermRule,
)
from hcl2.rules.literal_rules import FloatLitRule, IdentifierRule, IntLitRule, LiteralValueRule
from hcl2.rules.strings import HeredocTemplateRule, InterpolationRule, StringRule
from hcl2.utils import (
    HEREDOC_PATTERN,
    HEREDOC_TRIM_PATTERN,
    SerializationOptions,
    process_escape_sequences,
)

from mezzo.threatscan.model import LineDict, Unknown

_SOURCE_FORM = SerializationOptions(with_comments=False, explicit_blocks=False)


@dataclass
class Attribute:
    expression: Any  # an hcl2 rule
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
    try:
        start = hcl2.parses(text, discard_comments=True)
    except Exception as exc:  # lark raises many exception types for bad input
        raise HclError(_first_line(str(exc)) or type(exc).__name__) from None
    return _body_blocks(start.body)[1]


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def _body_blocks(body: LarkRule) -> tuple[dict[str, Attribute], list[Block]]:
    attributes: dict[str, Attribute] = {}
    blocks: list[Block] = []
    for child in body.children:
        if isinstance(child, AttributeRule):
            name = _identifier(child.identifier)
            attributes[name] = Attribute(child.expression, _line(child))
        elif isinstance(child, BlockRule):
            labels = [_label(label) for label in child.labels]
            inner_attributes, inner_blocks = _body_blocks(child.body)
            blocks.append(
                Block(labels[0], tuple(labels[1:]), _line(child), inner_attributes, inner_blocks)
            )
    return attributes, blocks


def _line(rule: LarkRule) -> int:
    return int(getattr(rule._meta, "line", 0) or 0)


def _identifier(rule: Any) -> str:
    return str(rule.token.value)


def _label(rule: Any) -> str:
    if isinstance(rule, StringRule):
        return "".join(
            str(part.content.value)
            for part in rule.string_parts
            if isinstance(part.content, LarkToken)
        )
    return _identifier(rule)


def source_text(rule: Any) -> str:
    try:
        text = rule.serialize(_SOURCE_FORM)
    except Exception:
        return "?"
    return text if isinstance(text, str) else json.dumps(text)


Resolver = Callable[[list[str]], Any]
_FUNCTIONS: dict[str, Callable[[list[Any]], Any]] = {}


class Evaluator:
    """Evaluates expressions to Python values; what it cannot know becomes `Unknown`."""

    def __init__(self, resolve: Resolver, read_file: Callable[[str], str | None]) -> None:
        self._resolve = resolve
        self._read_file = read_file

    def value(self, rule: Any) -> Any:
        if isinstance(rule, ExprTermRule):
            return self.value(rule.expression)
        if isinstance(rule, StringRule):
            return self._string(rule)
        if isinstance(rule, IntLitRule):
            return int(str(rule.token.value))
        if isinstance(rule, FloatLitRule):
            return float(str(rule.token.value))
        if isinstance(rule, LiteralValueRule):
            return {"true": True, "false": False, "null": None}.get(str(rule.token.value))
        if isinstance(rule, UnaryOpRule):
            inner = self.value(rule.expr_term)
            if rule.operator == "-" and isinstance(inner, int | float):
                return -inner
            if rule.operator == "!" and isinstance(inner, bool):
                return not inner
            return Unknown(source_text(rule))
        if isinstance(rule, TupleRule):
            return [self.value(element) for element in rule.elements]
        if isinstance(rule, ObjectRule):
            return self._object(rule)
        if isinstance(rule, HeredocTemplateRule):
            return self._heredoc(rule)
        if isinstance(rule, FunctionCallRule):
            return self._call(rule)
        parts = reference_parts(rule)
        if parts is not None:
            return self._resolve(parts)
        return Unknown(source_text(rule))

    def _string(self, rule: StringRule) -> Any:
        pieces: list[str] = []
        for part in rule.string_parts:
            content = part.content
            if isinstance(content, InterpolationRule):
                value = self.value(content.expression)
                if isinstance(value, (Unknown, dict | list)):
                    return Unknown(source_text(rule))
                pieces.append(_to_text(value))
            elif isinstance(content, LarkToken):
                pieces.append(process_escape_sequences(str(content.value)))
            else:  # template directives (%{ if }) are not evaluated
                return Unknown(source_text(rule))
        return "".join(pieces)

    def _object(self, rule: ObjectRule) -> Any:
        result = LineDict(line=_line(rule))
        for element in rule.elements:
            key_rule = element.key
            if isinstance(key_rule, ObjectElemKeyExpressionRule):
                key = self.value(key_rule.expression)
            else:
                inner = key_rule.value
                key = _identifier(inner) if isinstance(inner, IdentifierRule) else self.value(inner)
            if isinstance(key, Unknown):
                return Unknown(source_text(rule))
            result[_to_text(key)] = self.value(element.expression)
            result.key_lines[_to_text(key)] = _line(element)
        return result

    def _heredoc(self, rule: HeredocTemplateRule) -> Any:
        raw = str(rule.heredoc.value)
        match = (HEREDOC_TRIM_PATTERN if raw.startswith("<<-") else HEREDOC_PATTERN).match(raw)
        if not match:
            return Unknown("heredoc")
        body = match.group(2)
        if "%{" in body:
            return Unknown("heredoc with template directives")
        failed = False

        def substitute(found: re.Match[str]) -> str:
            nonlocal failed
            value = self._resolve(found.group(1).strip().split("."))
            if isinstance(value, (Unknown, dict | list)):
                failed = True
                return ""
            return _to_text(value)

        text = re.sub(r"(?<!\$)\$\{([A-Za-z0-9_.\-]+)\}", substitute, body)
        return Unknown("heredoc interpolation") if failed or "${" in text else text

    def _call(self, rule: FunctionCallRule) -> Any:
        name = "::".join(_identifier(i) for i in rule.identifiers)
        arguments = rule.arguments
        values = [self.value(a) for a in arguments.arguments] if arguments else []
        if name == "file" and values and isinstance(values[0], str):
            text = self._read_file(values[0])
            return Unknown(source_text(rule)) if text is None else text
        function = _FUNCTIONS.get(name)
        if function is None or any(isinstance(v, Unknown) for v in values):
            return Unknown(source_text(rule))
        try:
            return function(values)
        except (TypeError, ValueError, KeyError, IndexError):
            return Unknown(source_text(rule))


def reference_parts(rule: Any) -> list[str] | None:
    """`aws_iam_role.admin[0].arn` -> ['aws_iam_role', 'admin', 'arn'] (indexes dropped)."""
    if isinstance(rule, ExprTermRule):
        return None if rule.parentheses else reference_parts(rule.expression)
    if isinstance(rule, IdentifierRule):
        return [_identifier(rule)]
    if isinstance(rule, GetAttrExprTermRule):
        base = reference_parts(rule.expr_term)
        return None if base is None else [*base, _identifier(rule.get_attr.identifier)]
    if isinstance(rule, IndexExprTermRule):
        return reference_parts(rule.children[0])
    if isinstance(rule, AttrSplatExprTermRule | FullSplatExprTermRule):
        base = reference_parts(rule.expr_term)
        if base is None:
            return None
        attrs = [c for c in rule.attr_splat.children if not isinstance(c, LarkToken)]
        names = [_identifier(a.identifier) for a in attrs if hasattr(a, "identifier")]
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
