"""Parse both OpenAI request shapes into one neutral transcript the stub can reason about."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from mezzo.stub.tokens import (
    ITEM_OVERHEAD,
    NAME_OVERHEAD,
    REPLY_PRIMING,
    TOOL_CALL_OVERHEAD,
    count_tokens,
    count_tools,
)

ItemKind = Literal["message", "function_call", "function_call_output"]


class BadRequest(Exception):
    """A request the real API would refuse with 400; `param` names the offending field."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


@dataclass(frozen=True, slots=True)
class Item:
    kind: ItemKind
    role: str = ""
    text: str = ""
    call_id: str = ""
    name: str = ""

    def tokens(self) -> int:
        """OpenAI cookbook framing: every string field of the message, plus a fixed overhead."""
        if self.kind == "function_call":
            return TOOL_CALL_OVERHEAD + count_tokens(self.name) + count_tokens(self.text)
        total = ITEM_OVERHEAD + count_tokens(self.role) + count_tokens(self.text)
        if self.kind == "function_call_output":
            total += count_tokens(self.call_id)
        if self.name:
            total += count_tokens(self.name) + NAME_OVERHEAD
        return total


@lru_cache(maxsize=20_000)
def _item_tokens(item: Item) -> int:
    # A conversation is re-sent (or continued) every turn; only its new items are counted.
    return item.tokens()


def input_tokens(items: list[Item], tools: list[dict[str, Any]]) -> int:
    return sum(_item_tokens(item) for item in items) + count_tools(tools) + REPLY_PRIMING


def _content_text(content: Any, param: str) -> str:
    """Text of a message content: a string, or a list of text parts (other parts are skipped)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for index, part in enumerate(content):
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict):
                text = part.get("text")
                if isinstance(text, str):
                    texts.append(text)
            else:
                raise BadRequest(f"Invalid content part at {param}[{index}].", f"{param}[{index}]")
        return "".join(texts)
    raise BadRequest(f"Invalid type for '{param}': expected a string or an array.", param)


def _require_str(item: dict[str, Any], key: str, param: str) -> str:
    value = item.get(key)
    if not isinstance(value, str):
        raise BadRequest(f"Missing required parameter: '{param}.{key}'.", f"{param}.{key}")
    return value


def parse_responses_input(raw: Any, instructions: Any = None) -> list[Item]:
    """`input` of `POST /v1/responses`: a string or a list of items."""
    items: list[Item] = []
    if isinstance(instructions, str) and instructions:
        items.append(Item("message", role="system", text=instructions))
    if isinstance(raw, str):
        items.append(Item("message", role="user", text=raw))
        return items
    if not isinstance(raw, list):
        raise BadRequest("Invalid type for 'input': expected a string or an array.", "input")
    for index, entry in enumerate(raw):
        param = f"input[{index}]"
        if not isinstance(entry, dict):
            raise BadRequest(f"Invalid type for '{param}': expected an object.", param)
        kind = entry.get("type", "message")
        if kind == "message":
            role = _require_str(entry, "role", param)
            items.append(
                Item("message", role=role, text=_content_text(entry.get("content"), param))
            )
        elif kind == "function_call":
            items.append(
                Item(
                    "function_call",
                    role="assistant",
                    call_id=_require_str(entry, "call_id", param),
                    name=_require_str(entry, "name", param),
                    text=_require_str(entry, "arguments", param),
                )
            )
        elif kind == "function_call_output":
            output = entry.get("output")
            items.append(
                Item(
                    "function_call_output",
                    role="tool",
                    call_id=_require_str(entry, "call_id", param),
                    text=_content_text(output, f"{param}.output"),
                )
            )
        else:
            # Reasoning and other item types carry no text the stub reacts to; they still cost.
            items.append(Item("message", role="other", text=json.dumps(entry, sort_keys=True)))
    return items


def parse_chat_messages(raw: Any) -> list[Item]:
    """`messages` of `POST /v1/chat/completions`."""
    if not isinstance(raw, list) or not raw:
        raise BadRequest("'messages' must be a non-empty array.", "messages")
    items: list[Item] = []
    for index, message in enumerate(raw):
        param = f"messages[{index}]"
        if not isinstance(message, dict):
            raise BadRequest(f"Invalid type for '{param}': expected an object.", param)
        role = _require_str(message, "role", param)
        text = _content_text(message.get("content"), f"{param}.content")
        if role == "tool":
            call_id = _require_str(message, "tool_call_id", param)
            items.append(Item("function_call_output", role="tool", call_id=call_id, text=text))
            continue
        name = message.get("name")
        participant = name if isinstance(name, str) else ""
        items.append(Item("message", role=role, text=text, name=participant))
        for call_index, call in enumerate(message.get("tool_calls") or []):
            call_param = f"{param}.tool_calls[{call_index}]"
            function = call.get("function") if isinstance(call, dict) else None
            if not isinstance(function, dict):
                raise BadRequest(
                    f"Missing required parameter: '{call_param}.function'.", call_param
                )
            items.append(
                Item(
                    "function_call",
                    role="assistant",
                    call_id=_require_str(call, "id", call_param),
                    name=_require_str(function, "name", f"{call_param}.function"),
                    text=_require_str(function, "arguments", f"{call_param}.function"),
                )
            )
    return items
