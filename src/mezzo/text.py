"""Text that can always be written out again: no lone UTF-16 surrogates.

JSON can spell a code point that is half of a UTF-16 pair on its own (`"\\ud800"`); Python keeps
it in a `str`, but no UTF-8 encoder writes it, so a store, a response or a WebSocket frame that
meets one fails. mezzo refuses such text where it comes in (`checked_text`, `checked_json`, used
by the request models of `mezzo.protocol`), and anything written before that check, or by a
model, is written out with U+FFFD in its place (`scrubbed`, `utf8`).
"""

from __future__ import annotations

import codecs
import re
from typing import Any

from mezzo.bounds import MAX_JSON_DEPTH

_SURROGATE = re.compile("[\ud800-\udfff]")
REPLACEMENT = "\ufffd"
ERRORS = "mezzo.surrogates"


def _replace_surrogates(error: UnicodeError) -> tuple[bytes, int]:
    # As bytes: the UTF-8 encoder takes only ASCII back as a `str`.
    if not isinstance(error, UnicodeEncodeError):
        raise error
    return REPLACEMENT.encode() * (error.end - error.start), error.end


codecs.register_error(ERRORS, _replace_surrogates)


def has_lone_surrogate(text: str) -> bool:
    return not text.isascii() and _SURROGATE.search(text) is not None


def checked_text(text: str) -> str:
    if has_lone_surrogate(text):
        raise ValueError(
            "text holds a lone UTF-16 surrogate (U+D800 to U+DFFF), which is not Unicode text; "
            "send valid UTF-8 (in JSON, a \\ud800-\\udbff escape must be followed by a "
            "\\udc00-\\udfff one)"
        )
    return text


def checked_json(value: Any, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """`value` (decoded JSON) when every string and key in it is text and it nests at most
    `max_depth` deep; raises ValueError naming the problem. Walks without recursion."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            checked_text(item)
            continue
        if not isinstance(item, dict | list | tuple):
            continue
        if depth > max_depth:
            raise ValueError(f"JSON nests deeper than {max_depth} levels")
        if isinstance(item, dict):
            for key, inner in item.items():
                if isinstance(key, str):
                    checked_text(key)
                pending.append((inner, depth + 1))
        else:
            pending.extend((inner, depth + 1) for inner in item)
    return value


def scrubbed(value: Any) -> Any:
    """`value` with every lone surrogate in its strings (and keys) replaced by U+FFFD; the
    same object when there is none."""
    if isinstance(value, str):
        return _SURROGATE.sub(REPLACEMENT, value) if has_lone_surrogate(value) else value
    if isinstance(value, dict):
        items = [(scrubbed(key), scrubbed(inner)) for key, inner in value.items()]
        same = all(a is k and b is v for (a, b), (k, v) in zip(items, value.items(), strict=True))
        return value if same else dict(items)
    if isinstance(value, list | tuple):
        inner = [scrubbed(item) for item in value]
        return value if all(a is b for a, b in zip(inner, value, strict=True)) else inner
    return value


def utf8(text: str) -> bytes:
    """`text` as UTF-8, a lone surrogate written as U+FFFD."""
    return text.encode("utf-8", ERRORS)
