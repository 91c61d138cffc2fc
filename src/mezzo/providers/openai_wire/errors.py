"""OpenAI's error shape, `{"error": {"message", "type", "param", "code"}}`, and the refusal of a
request body that does not validate, worded as OpenAI words it."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from mezzo.errors import MezzoError

Body = TypeVar("Body", bound=BaseModel)

# pydantic error types → OpenAI's `code`.
_TYPE_CODES = {
    "missing": "missing_required_parameter",
    "extra_forbidden": "unknown_parameter",
    "unsupported_value": "unsupported_value",
    "union_tag_invalid": "unsupported_value",
    "union_tag_not_found": "unsupported_value",
}
_INVALID_TYPES = frozenset(
    {
        "string_type",
        "bool_type",
        "int_type",
        "float_type",
        "dict_type",
        "list_type",
        "model_type",
        "model_attributes_type",
        "int_from_float",
        "none_required",
        "is_instance_of",
    }
)
_EXPECTED = {
    "string_type": "a string",
    "bool_type": "a boolean",
    "int_type": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
    "list_type": "an array",
}


class WireError(MezzoError):
    """A request refused the way the OpenAI API refuses it: HTTP status, message, `code`,
    the offending `param`, the error `type`, and headers for the answer."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str,
        param: str | None = None,
        kind: str = "invalid_request_error",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.param = param
        self.kind = kind
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        }

    def event(self, sequence_number: int = 0) -> dict[str, Any]:
        """The WebSocket `error` event."""
        return {
            "type": "error",
            "status": self.status,
            "error": {**self.body()["error"], "headers": self.headers},
            "sequence_number": sequence_number,
        }


def bad(message: str, param: str | None = None, code: str = "invalid_value") -> WireError:
    return WireError(400, message, code, param)


def param_path(loc: tuple[int | str, ...]) -> str | None:
    """`("input", 0, "arguments")` → `input[0].arguments`; union tags (`tag:...`) left out."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part.startswith("tag:") or part.startswith("function-"):
            continue
        else:
            path += f".{part}" if path else part
    return path or None


def refusal(error: ValidationError) -> WireError:
    """The first problem of a body that does not validate, as a 400."""
    first: ErrorDetails = error.errors(include_url=False)[0]
    kind = first["type"]
    if kind == "json_invalid":
        return bad(f"The body is not valid JSON: {first['msg']}.", None, "invalid_json")
    if kind in ("model_type", "model_attributes_type") and not first["loc"]:
        return bad("The body must be a JSON object.", None, "invalid_json")
    param = param_path(first["loc"])
    code = _TYPE_CODES.get(kind, "invalid_type" if kind in _INVALID_TYPES else "invalid_value")
    where = f"'{param}'" if param else "the body"
    if kind == "missing":
        message = f"Missing required parameter: {where}."
    elif kind == "extra_forbidden":
        message = f"Unknown parameter: {where}."
    elif kind in _EXPECTED:
        got = type(first.get("input")).__name__
        message = f"Invalid type for {where}: expected {_EXPECTED[kind]}, but got {got} instead."
    elif code == "unsupported_value":
        message = f"Unsupported value at {where}: {first['msg']}."
    elif kind == "literal_error":
        message = f"Invalid value for {where}: {first['msg'].lower()}."
    else:
        message = f"Invalid value for {where}: {first['msg'].removeprefix('Value error, ')}."
    tagged = kind in ("union_tag_invalid", "unsupported_value")
    if tagged and param and not str(first["loc"][-1]).endswith("type"):
        param += ".type"
    return bad(message, param, code)


def parse(model: type[Body], raw: bytes | str) -> Body:
    """A request body (JSON) validated as `model`; a WireError says what is wrong."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as error:
        raise refusal(error) from None
