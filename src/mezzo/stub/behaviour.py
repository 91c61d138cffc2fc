"""What the stub model answers: a pure, deterministic function of the transcript.

- The newest user message may hold lines `/call NAME {json args}` (args optional, `{}` when
  absent). The k-th such line is answered with a function call once k-1 tool outputs have
  followed that message, so a message with three `/call` lines drives a three-step tool loop.
- Otherwise the stub answers text: `echo: ` + the newest tool output after the newest user
  message, or else the newest user message itself.
- A `/call` line with arguments that are not a JSON object is answered with text explaining
  that, never with a broken call.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from mezzo.stub.tokens import split_tokens
from mezzo.stub.transcript import Item

CALL_PREFIX = "/call "


@dataclass(frozen=True, slots=True)
class FunctionCall:
    call_id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Reply:
    """Either `text` or `call`; `pieces` are the deltas streamed (of the text or the arguments)."""

    text: str = ""
    call: FunctionCall | None = None
    pieces: tuple[str, ...] = ()
    output_tokens: int = 0
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class CallLine:
    name: str
    arguments: dict[str, Any] | None
    error: str = ""


def parse_call_lines(text: str) -> list[CallLine]:
    lines: list[CallLine] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped.startswith(CALL_PREFIX):
            continue
        name, _, raw_args = stripped[len(CALL_PREFIX) :].strip().partition(" ")
        if not name:
            continue
        raw_args = raw_args.strip() or "{}"
        try:
            arguments = json.loads(raw_args)
        except json.JSONDecodeError as err:
            lines.append(CallLine(name, None, f"invalid JSON arguments for {name}: {err.msg}"))
            continue
        if not isinstance(arguments, dict):
            lines.append(CallLine(name, None, f"arguments for {name} must be a JSON object"))
            continue
        lines.append(CallLine(name, arguments))
    return lines


def _call_id(items: list[Item], index: int) -> str:
    digest = hashlib.sha256()
    for item in items:
        digest.update(f"{item.kind}\0{item.role}\0{item.call_id}\0{item.text}\0".encode())
    digest.update(str(index).encode())
    return "call_" + digest.hexdigest()[:24]


def _padded(text: str, reply_tokens: int | None) -> list[str]:
    pieces = split_tokens(text)
    if reply_tokens is None:
        return pieces
    filler = split_tokens(" lorem ipsum dolor sit amet")
    missing = max(0, reply_tokens - len(pieces))
    pieces += [filler[index % len(filler)] for index in range(missing)]
    return pieces[:reply_tokens]


def decide(
    items: list[Item], *, max_output_tokens: int | None = None, reply_tokens: int | None = None
) -> Reply:
    """The reply to `items`. `reply_tokens` pads or cuts text replies to that many tokens."""
    user_index = next(
        (
            i
            for i in range(len(items) - 1, -1, -1)
            if items[i].kind == "message" and items[i].role == "user"
        ),
        None,
    )
    user_text = items[user_index].text if user_index is not None else ""
    later = items[user_index + 1 :] if user_index is not None else items
    outputs = [item for item in later if item.kind == "function_call_output"]

    calls = parse_call_lines(user_text)
    if len(outputs) < len(calls):
        line = calls[len(outputs)]
        if line.arguments is not None:
            arguments = json.dumps(line.arguments)
            call = FunctionCall(_call_id(items, len(outputs)), line.name, arguments)
            pieces = split_tokens(arguments)
            output_tokens = len(pieces) + len(split_tokens(line.name))
            return Reply(call=call, pieces=tuple(pieces), output_tokens=output_tokens)
        text = f"echo: {line.error}"
    elif outputs:
        text = f"echo: {outputs[-1].text}"
    else:
        text = f"echo: {user_text}"

    pieces = _padded(text, reply_tokens)
    truncated = max_output_tokens is not None and len(pieces) > max_output_tokens
    if truncated:
        pieces = pieces[:max_output_tokens]
    return Reply(
        text="".join(pieces), pieces=tuple(pieces), output_tokens=len(pieces), truncated=truncated
    )
