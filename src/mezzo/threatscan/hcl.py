"""HCL (Terraform) syntax: tree-sitter's HCL grammar -> blocks, attributes and expression trees.

tree-sitter parses in C and keeps the position of every node; the walk below turns its tree into
plain tuples (an `Expr`), so the evaluator (`hcl_eval`) never touches the parser, parse results
pickle (the `--cache`), and every block, attribute and object key keeps its line.

Expr, by tag:
    ("lit", value)                       string/number/bool/null
    ("tmpl", parts, text)                a template: literal strings and Exprs
    ("tuple", [Expr])
    ("object", [(key, Expr, line)], line)  key: ("name", str) for a bare name, else an Expr
    ("ref", [name, ...], text)            var.x, aws_iam_role.r.arn, local.l["k"] (indexes of
                                         literal strings kept, numeric ones and splats dropped)
    ("call", name, [Expr], expanded, text)
    ("cond", Expr, Expr, Expr, text)
    ("binop", operator, Expr, Expr, text)
    ("unop", operator, Expr, text)
    ("unknown", text)                    for-expressions, template directives, ...
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import tree_sitter_hcl
from tree_sitter import Language, Node, Parser

Expr = tuple[Any, ...]


@dataclass
class Attribute:
    expression: Expr
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


@lru_cache(maxsize=1)
def _parser() -> Parser:
    return Parser(Language(tree_sitter_hcl.language()))


def parse(text: str) -> list[Block]:
    """Parse one .tf file into its top-level blocks."""
    return parse_body(text)[1]


def parse_body(text: str) -> tuple[dict[str, Attribute], list[Block]]:
    """Parse one HCL file into its top-level attributes (a .tfvars file) and blocks."""
    source = text.encode("utf-8")
    tree = _parser().parse(source)
    root = tree.root_node
    if root.has_error:
        raise HclError(_first_error(root))
    body = next((c for c in root.named_children if c.type == "body"), None)
    try:
        return _body(body, source) if body is not None else ({}, [])
    except (ValueError, IndexError, AttributeError, RecursionError) as exc:
        # a construct the grammar accepts but this walk does not expect: skip the file, say so
        raise HclError(f"unsupported syntax ({type(exc).__name__})") from None


def _first_error(node: Node) -> str:
    stack = [node]
    while stack:
        current = stack.pop()
        if current.is_error or current.is_missing:
            line = current.start_point[0] + 1
            what = f"missing {current.type}" if current.is_missing else "unexpected input"
            return f"syntax error at line {line}: {what}"
        stack.extend(reversed([c for c in current.children if c.has_error or c.is_missing]))
    return "syntax error"


def _line(node: Node) -> int:
    return node.start_point[0] + 1


def _text(node: Node, source: bytes) -> str:
    return source[node.start_byte : node.end_byte].decode("utf-8", "replace")


def _body(body: Node, source: bytes) -> tuple[dict[str, Attribute], list[Block]]:
    attributes: dict[str, Attribute] = {}
    blocks: list[Block] = []
    for child in body.named_children:
        if child.type == "attribute":
            name, value = child.named_children[0], child.named_children[-1]
            attributes[_text(name, source)] = Attribute(_expr(value, source), _line(child))
        elif child.type == "block":
            labels: list[str] = []
            inner: tuple[dict[str, Attribute], list[Block]] = ({}, [])
            for part in child.named_children:
                if part.type == "identifier":
                    labels.append(_text(part, source))
                elif part.type == "string_lit":
                    labels.append(
                        "".join(
                            _unescape(_text(p, source))
                            for p in part.named_children
                            if p.type == "template_literal"
                        )
                    )
                elif part.type == "body":
                    inner = _body(part, source)
            if labels:
                blocks.append(Block(labels[0], tuple(labels[1:]), _line(child), *inner))
    return attributes, blocks


# ----------------------------------------------------------------------------- expressions


def _expr(node: Node, source: bytes) -> Expr:
    kind = node.type
    if kind == "expression":
        return _expression(node, source)
    if kind == "literal_value":
        return _literal(node.named_children[0], source)
    if kind == "template_expr":
        return _template(node.named_children[0], source)
    if kind == "collection_value":
        return _collection(node.named_children[0], source)
    if kind == "variable_expr":
        return ("ref", [_text(node, source)], _text(node, source))
    if kind == "function_call":
        return _call(node, source)
    if kind == "conditional":
        condition, when_true, when_false = node.named_children
        return (
            "cond",
            _expr(condition, source),
            _expr(when_true, source),
            _expr(when_false, source),
            _text(node, source),
        )
    if kind == "operation":
        return _expr(node.named_children[0], source)
    if kind == "unary_operation":
        operator, *operand = node.children
        return ("unop", _text(operator, source), _terms(operand, source), _text(node, source))
    if kind == "binary_operation":
        children = node.children
        at = next((i for i, c in enumerate(children) if not c.is_named and i > 0), None)
        if at is None:
            return ("unknown", _text(node, source))
        return (
            "binop",
            _text(children[at], source),
            _terms(children[:at], source),
            _terms(children[at + 1 :], source),
            _text(node, source),
        )
    return ("unknown", _text(node, source))


def _expression(node: Node, source: bytes) -> Expr:
    """An expression node: a primary term followed by .attr, [index] and splat traversals."""
    children = node.children
    if children and children[0].type == "(":
        return _expr(children[1], source)
    return _terms(node.named_children, source)


def _terms(named: list[Node], source: bytes) -> Expr:
    if not named:
        return ("unknown", "")
    if named[0].type == "(" and len(named) >= 2:
        return _expr(named[1], source)
    head = _expr(named[0], source)
    if len(named) == 1:
        return head
    text = source[named[0].start_byte : named[-1].end_byte].decode("utf-8", "replace")
    if head[0] != "ref":
        return ("unknown", text)
    parts = list(head[1])
    for step in named[1:]:
        if step.type == "get_attr":
            parts.append(_text(step.named_children[0], source))
        elif step.type == "index":
            key = _index_key(step, source)
            if key is not None:
                parts.append(key)
        elif step.type == "splat":
            for inner in step.named_children[0].named_children:
                if inner.type == "get_attr":
                    parts.append(_text(inner.named_children[0], source))
        else:
            return ("unknown", text)
    return ("ref", parts, text)


def _index_key(step: Node, source: bytes) -> str | None:
    inner = step.named_children[0]
    if inner.type == "new_index" and inner.named_children:
        key = _expr(inner.named_children[0], source)
        if key[0] == "lit" and isinstance(key[1], str):
            return key[1]
    return None


def _literal(node: Node, source: bytes) -> Expr:
    text = _text(node, source)
    if node.type == "numeric_lit":
        try:
            return ("lit", int(text))
        except ValueError:
            try:
                return ("lit", float(text))
            except ValueError:
                return ("unknown", text)
    if node.type == "bool_lit":
        return ("lit", text == "true")
    if node.type == "null_lit":
        return ("lit", None)
    if node.type == "string_lit":
        return (
            "lit",
            "".join(
                _unescape(_text(p, source))
                for p in node.named_children
                if p.type == "template_literal"
            ),
        )
    return ("unknown", text)


def _template(node: Node, source: bytes) -> Expr:
    if node.type == "heredoc_template":
        return _heredoc(node, source)
    parts: list[Any] = []
    for part in node.named_children:
        if part.type == "template_literal":
            parts.append(_unescape(_text(part, source)))
        elif part.type == "template_interpolation":
            inner = [c for c in part.named_children if c.type == "expression"]
            parts.append(_expr(inner[0], source) if inner else ("unknown", _text(part, source)))
        elif part.type == "template_directive":
            parts.append(("unknown", _text(part, source)))
    return _simplified(parts, _text(node, source))


def _heredoc(node: Node, source: bytes) -> Expr:
    """The text between the heredoc's opening line and its closing marker, interpolated."""
    markers = [c for c in node.named_children if c.type == "heredoc_identifier"]
    start = node.named_children[0]
    trim = _text(start, source).strip() == "<<-"
    body_start = source.index(b"\n", markers[0].end_byte) + 1 if markers else node.end_byte
    body_end = markers[-1].start_byte if len(markers) > 1 else node.end_byte
    parts: list[Any] = []
    cursor = body_start
    for part in node.named_children:
        if part.type not in ("template_interpolation", "template_directive"):
            continue
        if part.start_byte < body_start or part.start_byte >= body_end:
            continue
        parts.append(source[cursor : part.start_byte].decode("utf-8", "replace"))
        inner = [c for c in part.named_children if c.type == "expression"]
        if part.type == "template_interpolation" and inner:
            parts.append(_expr(inner[0], source))
        else:
            parts.append(("unknown", _text(part, source)))
        cursor = part.end_byte
    parts.append(source[cursor:body_end].decode("utf-8", "replace"))
    if trim:
        parts = _dedent(parts)
    literal = [
        p.replace("$${", "${").replace("%%{", "%{") if isinstance(p, str) else p for p in parts
    ]
    return _simplified(literal, _text(node, source))


def _dedent(parts: list[Any]) -> list[Any]:
    """`<<-`: remove the smallest indentation of the body's lines from every line."""
    text = "".join(p if isinstance(p, str) else "x" for p in parts)
    lines = [line for line in text.split("\n") if line.strip()]
    indent = min((len(line) - len(line.lstrip(" \t")) for line in lines), default=0)
    if not indent:
        return parts
    out: list[Any] = []
    at_line_start = True
    for part in parts:
        if not isinstance(part, str):
            out.append(part)
            at_line_start = False
            continue
        pieces = part.split("\n")
        trimmed = []
        for number, piece in enumerate(pieces):
            if number > 0 or at_line_start:
                piece = piece[min(indent, len(piece) - len(piece.lstrip(" \t"))) :]
            trimmed.append(piece)
        out.append("\n".join(trimmed))
        at_line_start = part.endswith("\n")
    return out


def _simplified(parts: list[Any], text: str) -> Expr:
    if all(isinstance(p, str) for p in parts):
        return ("lit", "".join(parts))
    return ("tmpl", parts, text)


def _collection(node: Node, source: bytes) -> Expr:
    if node.type == "tuple":
        return ("tuple", [_expr(c, source) for c in node.named_children if c.type == "expression"])
    if node.type == "object":
        elements: list[tuple[Any, Expr, int]] = []
        for element in node.named_children:
            if element.type != "object_elem":
                continue
            key_node, value_node = element.named_children[0], element.named_children[-1]
            bare = key_node.named_children
            if (
                len(bare) == 1
                and bare[0].type == "variable_expr"
                and key_node.children[0].type != "("
            ):
                key: Any = ("name", _text(bare[0], source))
            else:
                key = _expr(key_node, source)
            elements.append((key, _expr(value_node, source), _line(element)))
        return ("object", elements, _line(node))
    return ("unknown", _text(node, source))


def _call(node: Node, source: bytes) -> Expr:
    name = _text(node.named_children[0], source)
    arguments = next((c for c in node.named_children if c.type == "function_arguments"), None)
    values: list[Expr] = []
    expanded = False
    if arguments is not None:
        for argument in arguments.named_children:
            if argument.type == "expression":
                values.append(_expr(argument, source))
            elif argument.type == "ellipsis":
                expanded = True
    return ("call", name, values, expanded, _text(node, source))


_ESCAPES = re.compile(r"\\(u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}|.)|\$\$\{|%%\{", re.DOTALL)
_SIMPLE = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}


def _unescape(text: str) -> str:
    if "\\" not in text and "$${" not in text and "%%{" not in text:
        return text

    def replace(found: re.Match[str]) -> str:
        whole = found.group(0)
        if whole == "$${":
            return "${"
        if whole == "%%{":
            return "%{"
        escape = found.group(1)
        if escape[0] in "uU" and len(escape) > 1:
            return chr(int(escape[1:], 16))
        return _SIMPLE.get(escape, whole)

    return _ESCAPES.sub(replace, text)
