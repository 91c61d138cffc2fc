"""The stub's own deterministic tokenizer.

The stub must not depend on tiktoken's BPE files, so it counts with a small rule that behaves
roughly like a BPE tokenizer (about four characters of English per token) and is exact about
itself: a token is optional leading whitespace followed by one of

- up to four letters (a longer word is split into chunks of four),
- up to three digits,
- one other character (punctuation, symbols, `_`),

and trailing whitespace is one more token. Joining the tokens gives back the text, so the
stub streams exactly the pieces it counts.

Framing follows the OpenAI cookbook's count for chat messages, with this tokenizer: a message
costs `ITEM_OVERHEAD` plus the tokens of each of its string fields (role, content, and for a
tool output its call id), a participant `name` costs its tokens plus `NAME_OVERHEAD`, an
assistant tool call costs `TOOL_CALL_OVERHEAD` plus its name and JSON arguments, and every
request costs `REPLY_PRIMING` more. Tool schemas are framed with the cookbook's function
recipe (as mezzo's governor counts them), in this tokenizer. Responses API items are counted the same way:
instructions as a system message, `function_call` as a tool call, `function_call_output` as a
tool message.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

_TOKEN = re.compile(r"\s*(?:[^\W\d_]{1,4}|\d{1,3}|[^\w\s]|_)|\s+")

ITEM_OVERHEAD = 3
NAME_OVERHEAD = 1
TOOL_CALL_OVERHEAD = 3
REPLY_PRIMING = 3


def split_tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def count_tokens(text: str) -> int:
    return len(_TOKEN.findall(text))


class StubTokenizer:
    """This tokenizer behind the governor's `Tokenizer` protocol (`name`, `count`)."""

    name = "mezzo-stub"

    def count(self, text: str) -> int:
        return count_tokens(text)


def count_tools(tools: list[dict[str, Any]]) -> int:
    if not tools:
        return 0
    return _count_tools_json(json.dumps(tools, sort_keys=True, separators=(",", ":")))


# The same tool schemas come with every request of a conversation.
@lru_cache(maxsize=1024)
def _count_tools_json(tools_json: str) -> int:
    """Tool schemas framed as OpenAI frames them (the cookbook's recipe), in this tokenizer.

    Both wire shapes: Chat Completions `{"type": "function", "function": {...}}` and the
    Responses API's flat `{"type": "function", "name": ...}`.
    """
    from mezzo.governor.tokens import O200K_FRAMING, ChatCounter
    from mezzo.providers.base import ToolSpec

    specs = []
    for tool in json.loads(tools_json):
        spec = tool.get("function", tool) if isinstance(tool, dict) else {}
        specs.append(
            ToolSpec(
                name=str(spec.get("name", "")),
                description=str(spec.get("description") or ""),
                parameters=spec.get("parameters") or {},
            )
        )
    counter = ChatCounter(StubTokenizer(), O200K_FRAMING)
    return sum(counter.tool(s) for s in specs) + counter.tools_end(len(specs))
