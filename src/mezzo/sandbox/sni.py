"""Read the server name (SNI) out of a TLS ClientHello (pure)."""

from __future__ import annotations

import struct

MAX_HELLO_BYTES = 64 * 1024
_HANDSHAKE_RECORD = 0x16
_CLIENT_HELLO = 0x01
_SERVER_NAME_EXTENSION = 0x0000
_HOST_NAME = 0x00


class NotClientHello(ValueError):
    """The bytes are not a well-formed TLS ClientHello."""


def hello_complete(records: bytes) -> bool:
    """Whether `records` hold a whole ClientHello; raises `NotClientHello` if they are not TLS."""
    return _reassemble(records)[1]


def _reassemble(records: bytes) -> tuple[bytes | None, bool]:
    handshake = b""
    offset = 0
    while offset + 5 <= len(records):
        kind, _version, length = struct.unpack_from("!BHH", records, offset)
        if kind != _HANDSHAKE_RECORD:
            raise NotClientHello("first record is not a TLS handshake")
        if length == 0 or length > 18432:
            raise NotClientHello("bad TLS record length")
        body = records[offset + 5 : offset + 5 + length]
        handshake += body
        offset += 5 + length
        if len(handshake) >= 4:
            if handshake[0] != _CLIENT_HELLO:
                raise NotClientHello("first handshake message is not a ClientHello")
            total = 4 + int.from_bytes(handshake[1:4], "big")
            if total > MAX_HELLO_BYTES:
                raise NotClientHello("ClientHello too large")
            if len(handshake) >= total:
                return handshake[:total], True
        if len(body) < length:
            break
    if offset == 0 and len(records) < 5:
        if records and records[0] != _HANDSHAKE_RECORD:
            raise NotClientHello("first record is not a TLS handshake")
        return None, False
    return handshake, False


def server_name(records: bytes) -> str | None:
    """The SNI host name of a complete ClientHello, or `None` if it carries none."""
    handshake, complete = _reassemble(records)
    if handshake is None or not complete:
        raise NotClientHello("incomplete ClientHello")
    try:
        return _parse_hello(handshake[4:])
    except (struct.error, IndexError) as exc:
        raise NotClientHello(f"malformed ClientHello: {exc}") from None


def _parse_hello(body: bytes) -> str | None:
    offset = 2 + 32  # client_version, random
    offset += 1 + body[offset]  # session id
    (suites,) = struct.unpack_from("!H", body, offset)
    offset += 2 + suites
    offset += 1 + body[offset]  # compression methods
    if offset == len(body):
        return None
    (extensions_length,) = struct.unpack_from("!H", body, offset)
    offset += 2
    end = offset + extensions_length
    if end > len(body):
        raise NotClientHello("extensions overrun the ClientHello")
    while offset + 4 <= end:
        kind, length = struct.unpack_from("!HH", body, offset)
        offset += 4
        if kind == _SERVER_NAME_EXTENSION:
            return _parse_server_name(body[offset : offset + length])
        offset += length
    return None


def _parse_server_name(data: bytes) -> str | None:
    (list_length,) = struct.unpack_from("!H", data, 0)
    offset = 2
    end = min(len(data), 2 + list_length)
    while offset + 3 <= end:
        name_type, length = struct.unpack_from("!BH", data, offset)
        offset += 3
        if name_type == _HOST_NAME:
            try:
                return data[offset : offset + length].decode("ascii")
            except UnicodeDecodeError:
                raise NotClientHello("SNI host name is not ASCII") from None
        offset += length
    return None
