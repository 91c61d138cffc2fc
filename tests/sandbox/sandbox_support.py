"""Names shared by the sandbox tests and their fixtures."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

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
