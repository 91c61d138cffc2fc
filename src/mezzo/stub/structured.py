"""What the stub does with a request's output options, as the real API would.

- Structured output (Responses `text.format`, Chat `response_format`, type `json_schema` or
  `json_object`): the answer is a JSON value of the schema, the smallest that fits (every
  declared property present, the first of each choice), so a client's parser accepts it.
- Chat `stop`: the answer ends before the first stop sequence it contains.
- Chat `n`: the completion has that many (identical) choices.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 8


def requested_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON schema the answer must match (`{}` for any JSON object), or None."""
    text = body.get("text")
    fmt = text.get("format") if isinstance(text, dict) else None
    if not isinstance(fmt, dict):
        chat = body.get("response_format")
        fmt = None
        if isinstance(chat, dict):
            fmt = {**(chat.get("json_schema") or {}), "type": chat.get("type")}
    if not isinstance(fmt, dict):
        return None
    if fmt.get("type") == "json_object":
        return {"type": "object"}
    schema = fmt.get("schema")
    if fmt.get("type") == "json_schema" and isinstance(schema, dict):
        return schema
    return None


def instance(schema: dict[str, Any]) -> str:
    """The smallest JSON value of `schema`, as text."""
    return json.dumps(_value(schema, schema, 0))


def _value(schema: Any, root: dict[str, Any], depth: int) -> Any:
    if not isinstance(schema, dict) or depth > MAX_DEPTH:
        return None
    if "$ref" in schema:
        target: Any = root
        for part in str(schema["$ref"]).removeprefix("#/").split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        return _value(target, root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return _value(schema[key][0], root, depth + 1)
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        properties = schema.get("properties") or {}
        return {name: _value(sub, root, depth + 1) for name, sub in properties.items()}
    if kind == "array":
        return [_value(schema.get("items", {}), root, depth + 1)] * schema.get("minItems", 0)
    if kind == "string":
        return "stub" + "x" * max(0, schema.get("minLength", 0) - 4)
    if kind in ("integer", "number"):
        return schema.get("minimum", 0)
    if kind == "boolean":
        return True
    return None


def stopped(text: str, body: dict[str, Any]) -> str | None:
    """`text` cut before its first Chat `stop` sequence, or None when it has none."""
    stops = body.get("stop")
    if isinstance(stops, str):
        stops = [stops]
    if not isinstance(stops, list):
        return None
    found = [
        at for stop in stops if isinstance(stop, str) and stop and (at := text.find(stop)) >= 0
    ]
    return text[: min(found)] if found else None


def choices(body: dict[str, Any]) -> int:
    n = body.get("n")
    return n if isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= 128 else 1
