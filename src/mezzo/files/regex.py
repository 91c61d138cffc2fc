"""Regular expressions a model writes (`grep_file`, `~` filters): RE2, which matches in time
linear in the text and memory bounded by `max_mem`, so no pattern can backtrack for hours.

The syntax is Python's minus backreferences and lookaround (RE2 rejects those with a clear
error, which goes back to the model).
"""

from __future__ import annotations

from typing import Protocol

import re2

from mezzo.files.errors import QueryError

MAX_PATTERN_CHARS = 4096
MAX_PROGRAM_BYTES = 8 << 20


class Matcher(Protocol):
    def search(self, text: bytes) -> object | None: ...


def compile_pattern(
    name: str, pattern: str, *, ignore_case: bool = False, lines: bool = False
) -> Matcher:
    """A linear-time matcher for `pattern` over UTF-8 bytes, or `QueryError` naming `name`.

    With `lines`, the matcher searches a block of many lines at once: `^` and `$` match at
    every line's start and end, and no match spans a newline, so a block has a match exactly
    when one of its lines has (patterns using `\\A` or `\\z` excepted)."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise QueryError(name, f"regular expression longer than {MAX_PATTERN_CHARS} characters")
    options = re2.Options()
    options.log_errors = False
    options.max_mem = MAX_PROGRAM_BYTES
    options.case_sensitive = not ignore_case
    options.never_nl = lines
    text = f"(?m){pattern}" if lines else pattern
    try:
        return re2.compile(text.encode(), options=options)
    except re2.error as exc:
        raw = exc.args[0] if exc.args else b"invalid"
        detail = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
        raise QueryError(
            name,
            f"invalid regular expression {pattern!r}: {detail} (RE2 syntax: like Python's, "
            "without backreferences or lookaround)",
        ) from None
