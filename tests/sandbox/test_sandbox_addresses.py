"""The egress address policy: every IPv6 form that embeds an IPv4 address is judged by that
address, and anything that is not global unicast is refused (pure, plus the proxy end to end
with a resolver that answers the hostile forms)."""

from __future__ import annotations

import asyncio
import ipaddress
from pathlib import Path

import pytest
from sandbox_support import ALLOWED, capture_logs

from mezzo.sandbox.egress import EgressProxy, is_public_address

DENIED = [
    # NAT64 (RFC 6052 well-known prefix) wrapping metadata, private and loopback addresses
    "64:ff9b::a9fe:a9fe", "64:ff9b::169.254.169.254", "64:ff9b::a00:1", "64:ff9b::7f00:1",
    "64:ff9b::c0a8:101",
    # NAT64 local-use prefix (RFC 8215): the operator picks the layout, so never global
    "64:ff9b:1::a00:1", "64:ff9b:1:ffff::808:808",
    # 6to4 (deprecated, RFC 7526) wrapping loopback, private, public
    "2002:7f00:1::", "2002:a00:1::1", "2002:a9fe:a9fe::1", "2002:808:808::1",
    # IPv4-compatible (deprecated) and IPv4-mapped / IPv4-translated forms
    "::7f00:1", "::127.0.0.1", "::a9fe:a9fe", "::808:808", "::ffff:7f00:1",
    "::ffff:a9fe:a9fe", "::ffff:0:a00:1", "::ffff:0:808:808",
    # Teredo (client address obfuscated) and other tunnels
    "2001::1", "2001:0:4136:e378:8000:63bf:3fff:fdd2",
    # site-local, unique-local, link-local, multicast, documentation, discard, benchmarking
    "fec0::1", "feff::1", "fc00::1", "fd12:3456::1", "fe80::1", "ff02::1", "ff0e::1",
    "2001:db8::1", "3fff::1", "100::1", "2001:2::1", "5f00::1", "::", "::1",
    "fd00:ec2::254",
    # IPv4: private, shared, special and documentation ranges
    "127.0.0.1", "10.0.0.1", "172.16.0.1", "192.168.0.1", "169.254.169.254", "100.64.0.1",
    "100.100.100.200", "0.0.0.0", "0.1.2.3", "192.0.0.8", "192.0.2.1", "198.51.100.1",
    "203.0.113.5", "198.18.0.1", "192.88.99.1", "224.0.0.1", "239.1.1.1", "240.0.0.1",
    "255.255.255.255",
]  # fmt: skip
ALLOWED_ADDRESSES = [
    "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2a00:1450:4001:80b::200e",
    "64:ff9b::808:808", "::ffff:8.8.8.8",
]  # fmt: skip


@pytest.mark.parametrize("address", DENIED)
def test_non_global_and_wrapped_forbidden_addresses_are_refused(address: str) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is False


@pytest.mark.parametrize("address", ALLOWED_ADDRESSES)
def test_global_unicast_addresses_pass(address: str) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is True


@pytest.mark.parametrize(
    "answer", ["64:ff9b::a9fe:a9fe", "2002:7f00:1::", "::7f00:1", "fec0::1", "fe80::1%eth0", "?"]
)
async def test_the_proxy_refuses_a_name_that_resolves_to_a_wrapped_forbidden_address(
    tmp_path: Path, answer: str
) -> None:
    asked: list[str] = []

    async def resolver(host: str, port: int) -> list[str]:
        asked.append(host)
        return [answer]

    proxy = EgressProxy([ALLOWED], resolver=resolver)
    path = str(tmp_path / "proxy.sock")
    await proxy.start(path)
    try:
        with capture_logs() as logs:
            reader, writer = await asyncio.open_unix_connection(path)
            writer.write(f"CONNECT {ALLOWED}:443 HTTP/1.1\r\n\r\n".encode())
            reply = await reader.read()
            writer.close()
    finally:
        await proxy.close()
    assert asked == [ALLOWED]
    assert reply.startswith(b"HTTP/1.1 403 Forbidden"), reply
    assert logs[-1]["reason"] == "resolves only to non-public addresses"
