"""What a credential or a secret looks like in configuration (names, values, AWS key ids)."""

from __future__ import annotations

import re

# AWS documentation, "Understanding unique ID prefixes": AKIA long-term, ASIA temporary keys.
AWS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b")
AWS_SECRET_NAME = re.compile(r"(?i)aws_?secret_?access_?key|aws_?session_?token")
_SECRET_NAME = re.compile(
    r"(?i)(passw(or)?d|passwd|secret|token|api[_-]?key|private[_-]?key|credential|"
    r"access[_-]?key|auth[_-]?key|client[_-]?secret|conn(ection)?[_-]?string|dsn)"
)
_PLACEHOLDER = re.compile(r"(?i)^(changeme|change-me|todo|xxx+|\*+|none|null|example|dummy|test)$")


def looks_like_secret_name(name: str) -> bool:
    return bool(_SECRET_NAME.search(name))


def looks_like_secret_value(value: str) -> bool:
    """An AWS key id, a private key block, or a URL with a password in it."""
    return bool(
        AWS_KEY_ID.search(value)
        or "PRIVATE KEY-----" in value
        or re.search(r"://[^/\s:@]+:[^/\s@]+@", value)
    )


def is_real_value(value: str) -> bool:
    """A literal worth calling a leaked secret: not empty, not a placeholder."""
    stripped = value.strip()
    return len(stripped) >= 6 and not _PLACEHOLDER.match(stripped)
