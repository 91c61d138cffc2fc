"""The egress allowlist: domain names and `*.suffix` patterns (pure)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


class DomainError(ValueError):
    """A malformed `allow_net` entry."""


def normalize_host(host: str) -> str:
    """Lower-case a host name and drop one trailing dot (`Example.COM.` → `example.com`)."""
    host = host.strip().lower()
    return host[:-1] if host.endswith(".") else host


def validate_pattern(pattern: str) -> str:
    """Return the normalized pattern, or raise `DomainError` saying what is wrong with it."""
    original = pattern
    pattern = normalize_host(pattern)
    name = pattern[2:] if pattern.startswith("*.") else pattern
    if not name:
        raise DomainError(f"malformed domain {original!r}: empty name")
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        pass
    else:
        raise DomainError(f"malformed domain {original!r}: allow_net takes names, not addresses")
    if len(name) > 253:
        raise DomainError(f"malformed domain {original!r}: longer than 253 characters")
    labels = name.split(".")
    if "*" in name:
        raise DomainError(f"malformed domain {original!r}: '*' is only allowed as a leading '*.'")
    if len(labels) < 2 and pattern != name:
        raise DomainError(f"malformed domain {original!r}: '*.' needs a suffix with a dot")
    for label in labels:
        if not _LABEL.match(label):
            raise DomainError(f"malformed domain {original!r}: bad label {label!r}")
    return pattern


class Allowlist:
    """Exact names (`github.com`) and suffix patterns (`*.github.com`, subdomains only)."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.exact: frozenset[str] = frozenset()
        self.suffixes: tuple[str, ...] = ()
        exact: set[str] = set()
        suffixes: list[str] = []
        for raw in patterns:
            pattern = validate_pattern(raw)
            if pattern.startswith("*."):
                suffixes.append(pattern[1:])
            else:
                exact.add(pattern)
        self.exact = frozenset(exact)
        self.suffixes = tuple(suffixes)

    def __bool__(self) -> bool:
        return bool(self.exact or self.suffixes)

    def allows(self, host: str) -> bool:
        host = normalize_host(host)
        if not host or host in self.exact:
            return bool(host)
        return any(host.endswith(suffix) and len(host) > len(suffix) for suffix in self.suffixes)
