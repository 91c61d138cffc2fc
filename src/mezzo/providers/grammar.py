"""Output plans for the local model: what it must produce, as a llama.cpp grammar.

A small open-weights model cannot be trusted to emit a well-formed tool call on its own, so
whenever the shape of the answer matters the sampler is constrained by a GBNF grammar built
from JSON schemas (llama.cpp's own schema converter). The shapes:

- ``text``: free text, no grammar (no tools offered, or ``tool_choice="none"``).
- ``json``: the answer is a JSON value matching ``response_schema``.
- ``arguments``: ``tool_choice`` names a tool; the model writes only that tool's arguments.
- ``call``: ``tool_choice="required"``; the model writes ``{"name": ..., "arguments": ...}``
  for exactly one of the offered tools.
- ``call_or_answer``: ``tool_choice="auto"`` with tools; the model either writes a call as
  above (the output starts with ``{``) or an answer (text that does not start with ``{``,
  or a JSON value matching ``response_schema`` when one is given). For a free-text answer the
  grammar is applied lazily: decoding starts unconstrained, and only if the first
  non-blank character is ``{`` does it restart under ``call_grammar`` (a grammar costs about
  as much per token as the model itself here, and most turns are answers).

Every plan parses its output back and validates it with ``jsonschema``, so what leaves the
provider is a valid call, a valid answer, or an error.
"""

from __future__ import annotations

import copy
import json
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from mezzo.providers.base import ToolCall, ToolSpec

Shape = Literal["text", "json", "arguments", "call", "call_or_answer"]

# Arrays without maxItems let a small model repeat items until max_tokens; the grammar bounds
# them (the schema used for validation is left as the caller wrote it).
MAX_ARRAY_ITEMS = 16


class GrammarError(ValueError):
    """A schema that is invalid or that the grammar converter cannot express."""


class OutputError(ValueError):
    """Model output that does not parse or validate (normally only when cut at max_tokens)."""


@dataclass(frozen=True, slots=True)
class ParsedOutput:
    text: str
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True, slots=True)
class OutputPlan:
    shape: Shape
    grammar: str | None
    instructions: str
    tools: tuple[ToolSpec, ...] = ()
    response_schema: dict[str, Any] | None = None
    # call_or_answer with a free-text answer: no grammar until the output turns out to be a
    # call (its first non-blank character is "{"), then this one.
    call_grammar: str | None = None

    @property
    def streams_text(self) -> bool:
        """Whether generated text is the answer as it arrives (so it can be streamed)."""
        return self.shape in ("text", "json")

    def parse(self, output: str) -> ParsedOutput:
        if self.shape == "text":
            return ParsedOutput(text=output)
        if self.shape == "json":
            _validate(_load_json(output, "answer"), self.response_schema or {}, "answer")
            return ParsedOutput(text=output)
        if self.shape == "arguments":
            (tool,) = self.tools
            return ParsedOutput(
                text="", tool_calls=(_tool_call(tool, _load_json(output, tool.name)),)
            )
        if self.shape == "call":
            return ParsedOutput(text="", tool_calls=(self._parse_call(_load_json(output, "call")),))
        return self._parse_call_or_answer(output)

    def _parse_call_or_answer(self, output: str) -> ParsedOutput:
        if self.response_schema is None and not output.startswith("{"):
            return ParsedOutput(text=output)
        value = _load_json(output, "call or answer")
        # A free-text answer never starts with "{", so such output must be a call.
        if self.response_schema is None or _looks_like_call(value, self.tools):
            return ParsedOutput(text="", tool_calls=(self._parse_call(value),))
        _validate(value, self.response_schema, "answer")
        return ParsedOutput(text=output)

    def _parse_call(self, value: Any) -> ToolCall:
        if not _looks_like_call(value, self.tools):
            raise OutputError(f"model output is not a call of an offered tool: {value!r}")
        tool = next(t for t in self.tools if t.name == value["name"])
        return _tool_call(tool, value["arguments"])


def plan_output(
    tools: tuple[ToolSpec, ...],
    tool_choice: str,
    response_schema: dict[str, Any] | None,
) -> OutputPlan:
    """Decide the shape of the output and build its grammar. Raises GrammarError."""
    for tool in tools:
        _check_schema(tool.parameters, f"parameters of tool {tool.name!r}")
    if response_schema is not None:
        _check_schema(response_schema, "response_schema")

    if not tools or tool_choice == "none":
        if response_schema is None:
            return OutputPlan("text", None, "")
        return OutputPlan(
            "json",
            _grammar({"root": response_schema}, "root"),
            "Answer with JSON matching this schema: " + _compact(response_schema),
            response_schema=response_schema,
        )

    if tool_choice not in ("auto", "required"):
        chosen = next((t for t in tools if t.name == tool_choice), None)
        if chosen is None:
            offered = ", ".join(t.name for t in tools)
            raise GrammarError(f"tool_choice names {tool_choice!r}, not one of: {offered}")
        return OutputPlan(
            "arguments",
            _grammar({"root": _object_schema(chosen.parameters)}, "root"),
            f"{_describe_tools((chosen,))}\nCall the tool {chosen.name}. "
            "Reply with its arguments as a JSON object and nothing else.",
            tools=(chosen,),
        )

    call_schema = {"oneOf": [_call_schema(t) for t in tools]}
    if tool_choice == "required":
        return OutputPlan(
            "call",
            _grammar({"root": call_schema}, "root"),
            f"{_describe_tools(tools)}\nCall one of these tools. Reply only with "
            '{"name": <tool name>, "arguments": <JSON object>}.',
            tools=tools,
        )

    instructions = (
        f"{_describe_tools(tools)}\nTo call a tool, reply only with "
        '{"name": <tool name>, "arguments": <JSON object>}. Otherwise answer directly.'
    )
    if response_schema is None:
        return OutputPlan(
            "call_or_answer",
            None,
            instructions,
            tools=tools,
            call_grammar=_grammar({"root": call_schema}, "root"),
        )
    return OutputPlan(
        "call_or_answer",
        _grammar({"call": call_schema, "answer": response_schema}, "call | answer"),
        instructions,
        tools=tools,
        response_schema=response_schema,
    )


def _grammar(schemas: dict[str, dict[str, Any]], root: str) -> str:
    from llama_cpp.llama_grammar import SchemaConverter

    converter = SchemaConverter(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
    lines = []
    try:
        for name, schema in schemas.items():
            resolved = converter.resolve_refs(_bounded(schema), name)
            converter.visit(resolved, "" if name == "root" else name)
        lines.append(converter.format_grammar())
    except Exception as exc:
        raise GrammarError(f"the grammar cannot express this schema: {exc}") from exc
    if root != "root":
        lines.append(f"root ::= {root}")
    return "\n".join(lines) + "\n"


def _bounded(schema: Any) -> Any:
    """A copy of `schema` whose arrays without maxItems get MAX_ARRAY_ITEMS."""
    schema = copy.deepcopy(schema)

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "array" and "maxItems" not in node:
                node["maxItems"] = max(MAX_ARRAY_ITEMS, node.get("minItems", 0))
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(schema)
    return schema


def _object_schema(parameters: dict[str, Any]) -> dict[str, Any]:
    # Tools with no declared parameters still take a JSON object.
    return parameters or {"type": "object", "properties": {}}


def _call_schema(tool: ToolSpec) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"name": {"const": tool.name}, "arguments": _object_schema(tool.parameters)},
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }


def _check_schema(schema: dict[str, Any], what: str) -> None:
    import jsonschema

    if not isinstance(schema, dict):
        raise GrammarError(f"{what} must be a JSON schema object, got {type(schema).__name__}")
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise GrammarError(f"{what} is not a valid JSON schema: {exc.message}") from exc


def _validate(value: Any, schema: dict[str, Any], what: str) -> None:
    import jsonschema

    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError as exc:
        raise OutputError(
            f"{what} does not match its schema at {exc.json_path}: {exc.message}"
        ) from exc


def _load_json(output: str, what: str) -> Any:
    try:
        return json.loads(output)
    except json.JSONDecodeError as exc:
        raise OutputError(f"{what} is not complete JSON ({exc.msg}): {output[:200]!r}") from exc


def _looks_like_call(value: Any, tools: tuple[ToolSpec, ...]) -> bool:
    return (
        isinstance(value, dict)
        and set(value) == {"name", "arguments"}
        and any(t.name == value["name"] for t in tools)
    )


def _tool_call(tool: ToolSpec, arguments: Any) -> ToolCall:
    if not isinstance(arguments, dict):
        raise OutputError(f"arguments of {tool.name} are not a JSON object: {arguments!r}")
    _validate(arguments, _object_schema(tool.parameters), f"arguments of {tool.name}")
    return ToolCall(call_id=f"call_{uuid.uuid4().hex[:24]}", name=tool.name, arguments=arguments)


def _describe_tools(tools: tuple[ToolSpec, ...]) -> str:
    lines = ["You can use these tools:"]
    for tool in tools:
        lines.append(f"- {tool.name}: {tool.description} Parameters: {_compact(tool.parameters)}")
    return "\n".join(lines)


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
