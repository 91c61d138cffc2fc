"""Names shared by the sandbox tests and their fixtures."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mezzo.sandbox.egress import Address

ALLOWED = "allowed.test"
LOOPBACK = ipaddress.ip_address("127.0.0.1")


def loopback_only(address: Address) -> bool:
    """The policy for tests of *allowed* traffic: our test servers live on 127.0.0.1."""
    return address == LOOPBACK


async def resolve_to_loopback(host: str, port: int) -> list[str]:
    return ["127.0.0.1"]


@dataclass
class LoopbackServer:
    port: int
    requests: list[str] = field(default_factory=list)
    cert: Path | None = None


def tiny_rootfs(root: Path) -> Path:
    """A root folder holding just dash and the C library, and one file to recognise it by."""
    for binary in ("/bin/sh", "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"):
        copy = root / binary.lstrip("/")
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(Path(binary).resolve(), copy)
    (root / "etc").mkdir()
    (root / "etc/image-name").write_text("tiny")
    return root


@contextlib.contextmanager
def capture_logs() -> Iterator[list[dict[str, Any]]]:
    """The proxy's decisions while the block runs: each the key-value pairs it logged."""
    logger = logging.getLogger("mezzo.sandbox.egress")
    records: list[dict[str, Any]] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(vars(record))  # type: ignore[method-assign]
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
