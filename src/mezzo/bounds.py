"""The bounds of what mezzo accepts, defined once: the id alphabet (workspace, run, file and job
ids, and the keys under which the store keeps a workspace), the integers every store holds, and
how deeply JSON may nest.

An id is 1 to 128 characters of `A-Z a-z 0-9 _ . : -`, starting with a letter or a digit: safe
as a path segment of a URL and as a folder name, never `.`, `..` or a hidden name, never a `/`
(the store's key-value keys use `/` as their separator, see `mezzo.keys`).

A workspace's id is its tenant's own (two tenants may both have `prod`). The store keeps it
under a *key*: the digest of the tenant, `~`, and the id (`keys.workspace_key`). `~` is outside
the id alphabet, so a key is never an id: the workspaces made before ids were per tenant are
still kept under their id, and no new key can meet one of them.
"""

from __future__ import annotations

import re

ID_CHARS = r"A-Za-z0-9_.:-"
ID_MAX = 128
ID_PATTERN = re.compile(rf"^[A-Za-z0-9][{ID_CHARS}]{{0,{ID_MAX - 1}}}$")
# The tenant's digest in a workspace key: 96 bits, so no two tenants share a namespace.
TENANT_DIGEST_CHARS = 24
WORKSPACE_KEY_PATTERN = re.compile(
    rf"^(?:[0-9a-f]{{{TENANT_DIGEST_CHARS}}}~)?[A-Za-z0-9][{ID_CHARS}]{{0,{ID_MAX - 1}}}$"
)

# The largest integer every store holds exactly: Redis' scripts count in doubles (2^53), SQLite
# in signed 64-bit integers. Token amounts (budgets, top-ups) are bounded by it.
MAX_TOKENS = 2**53 - 1
# The largest sequence number or cursor (SQLite INTEGER).
MAX_SEQ = 2**63 - 1
MAX_SEQ_DIGITS = len(str(MAX_SEQ))
# How deeply JSON may nest (objects and arrays), in a request body or a free-form field: far
# beyond any tool schema, far below what a recursive reader or writer can take.
MAX_JSON_DEPTH = 64


def is_id(value: str) -> bool:
    return ID_PATTERN.fullmatch(value) is not None


def is_workspace_key(value: str) -> bool:
    return WORKSPACE_KEY_PATTERN.fullmatch(value) is not None


def parse_seq(text: str) -> int | None:
    """A sequence number written in ASCII digits, within `MAX_SEQ`; None for anything else
    (`²` is a digit to `str.isdigit` but not to `int`, and 5,000 digits are no seq)."""
    if not text.isascii() or not text.isdigit() or len(text) > MAX_SEQ_DIGITS:
        return None
    value = int(text)
    return value if value <= MAX_SEQ else None
