"""Which addresses the egress proxy may connect to (pure): global unicast only, judged after
every IPv6 form that embeds an IPv4 address has been unwrapped to that address.

Deny by default: an IPv6 address passes only inside 2000::/3 (global unicast), outside the
special-purpose blocks below, and with Python's `is_global`; an IPv4 address only when
`is_global`, not multicast and outside the blocks below. Embedded forms:

- IPv4-mapped `::ffff:a.b.c.d` and NAT64 `64:ff9b::a.b.c.d` (RFC 6052, the only NAT64 prefix
  with a fixed layout) are judged by their IPv4 address;
- IPv4-compatible `::a.b.c.d` (deprecated), IPv4-translated `::ffff:0:a.b.c.d`, the NAT64
  local-use prefix `64:ff9b:1::/48` (its layout is the operator's choice), 6to4 `2002::/16`
  (deprecated, RFC 7526) and Teredo `2001::/32` (client address obfuscated) are refused
  whatever they wrap.
"""

from __future__ import annotations

import ipaddress

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "100.100.100.200", "fd00:ec2::254")
)
GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")
NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")
DENIED_V6 = tuple(
    ipaddress.ip_network(n)
    for n in (
        "2001::/23",  # IETF protocol assignments, Teredo (2001::/32) among them
        "2001:db8::/32",  # documentation
        "2002::/16",  # 6to4
        "3fff::/20",  # documentation (RFC 9637)
    )
)
DENIED_V4 = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "100.64.0.0/10",  # shared address space (carrier NAT)
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",
        "198.51.100.0/24",
        "203.0.113.0/24",  # documentation
        "192.88.99.0/24",  # 6to4 relay anycast (deprecated)
        "198.18.0.0/15",  # benchmarking
        "224.0.0.0/3",  # multicast and reserved, up to 255.255.255.255
    )
)


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, where its form says so unambiguously."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in NAT64_WELL_KNOWN:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public_address(address: Address) -> bool:
    """Only global unicast addresses (after unwrapping) that are not a cloud metadata endpoint."""
    if address in METADATA_ADDRESSES:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        wrapped = embedded_ipv4(address)
        if wrapped is not None:
            return is_public_address(wrapped)
        if address.scope_id or address not in GLOBAL_UNICAST:
            return False
        return address.is_global and not any(address in net for net in DENIED_V6)
    return (
        address.is_global
        and not address.is_multicast
        and not any(address in net for net in DENIED_V4)
    )


def parse_address(text: str) -> Address | None:
    """A resolver's answer as an address, or None when it is not one."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None
