"""The egress proxy: the only way out of a sandbox whose spec has `allow_net`.

It listens on a Unix socket that is mounted into the sandbox (and bridged there to
`127.0.0.1:3128`). A request passes only when

- its host (CONNECT target, or the absolute URL / Host header of plain HTTP) matches the
  allowlist and its port is allowed,
- the name resolves (through the proxy's own resolver) to at least one global unicast address
  (`addresses.is_public_address`: IPv6 forms that wrap an IPv4 address are judged by it;
  anything not global unicast is refused, metadata endpoints too), even for allowed names,
  and the proxy connects to the address it checked (pinned), never re-resolving;
- for CONNECT, the first bytes are a TLS ClientHello whose SNI equals the CONNECT host.

Every decision is logged (`mezzo.sandbox.egress` record "egress" with `decision`, `reason`).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import urlsplit

from mezzo.logs import get_logger
from mezzo.sandbox.addresses import Address, is_public_address, parse_address
from mezzo.sandbox.allowlist import Allowlist, normalize_host
from mezzo.sandbox.sni import MAX_HELLO_BYTES, NotClientHello, hello_complete, server_name

Resolver = Callable[[str, int], Awaitable[list[str]]]
AddressPolicy = Callable[[Address], bool]

MAX_HEAD_BYTES = 64 * 1024
HEAD_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 10.0
MAX_CONNECTIONS = 128  # per sandbox: the socket is reachable without going through socat
_HOP_HEADERS = {"proxy-connection", "proxy-authorization", "connection", "keep-alive"}

log = get_logger("mezzo.sandbox.egress")


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return [str(info[4][0]) for info in infos]


class Refused(Exception):
    """A request the proxy answers with an error; `logged` once its decision was logged."""

    def __init__(self, status: int, reason: str, *, logged: bool = False) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.logged = logged


class EgressProxy:
    def __init__(
        self,
        allow: Iterable[str],
        *,
        allowed_ports: Iterable[int] = (80, 443),
        resolver: Resolver = system_resolver,
        address_allowed: AddressPolicy = is_public_address,
    ) -> None:
        self.allowlist = allow if isinstance(allow, Allowlist) else Allowlist(allow)
        self.allowed_ports = frozenset(allowed_ports)
        self.resolver = resolver
        self.address_allowed = address_allowed
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, socket_path: str) -> None:
        self._server = await asyncio.start_unix_server(self._serve, path=socket_path)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._handle(reader, writer)
        except Refused as refused:
            if not refused.logged:
                log.info("egress", decision="deny", kind="request", reason=refused.reason)
            await _reply(writer, refused.status, refused.reason)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT_S)
        except (TimeoutError, asyncio.LimitOverrunError):
            raise Refused(400, "request head missing or too large") from None
        if len(self._tasks) > MAX_CONNECTIONS:
            raise Refused(503, f"more than {MAX_CONNECTIONS} connections at once")
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        parts = request_line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise Refused(400, "malformed request line")
        method, target, version = parts
        headers = [line for line in header_lines if line]
        if method == "CONNECT":
            await self._connect(target, reader, writer)
        else:
            await self._forward(method, target, version, headers, reader, writer)

    def _check_name(self, host: str, port: int, kind: str) -> None:
        if not self.allowlist.allows(host):
            self._decide("deny", kind, host, port, "host not in allowlist")
            raise Refused(403, f"{host} is not in the sandbox's network allowlist", logged=True)
        if port not in self.allowed_ports:
            self._decide("deny", kind, host, port, "port not allowed")
            raise Refused(403, f"port {port} is not allowed", logged=True)

    async def _pin(self, host: str, port: int, kind: str) -> str:
        try:
            found = await asyncio.wait_for(self.resolver(host, port), CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            self._decide("deny", kind, host, port, f"resolution failed: {exc}")
            raise Refused(502, f"cannot resolve {host}", logged=True) from None
        for text in found:
            address = parse_address(text)
            if address is not None and self.address_allowed(address):
                return str(address)
        self._decide(
            "deny", kind, host, port, "resolves only to non-public addresses", addresses=found
        )
        raise Refused(403, f"{host} resolves to a forbidden address", logged=True)

    async def _open(
        self, address: str, port: int, host: str, kind: str
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            return await asyncio.wait_for(asyncio.open_connection(address, port), CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            self._decide(
                "error", kind, host, port, f"upstream connect failed: {exc}", address=address
            )
            raise Refused(502, f"cannot connect to {host}", logged=True) from None

    async def _connect(
        self, target: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        host, port = _split_host_port(target, default_port=None)
        self._check_name(host, port, "connect")
        address = await self._pin(host, port, "connect")
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        hello = await self._read_hello(reader, host, port)
        try:
            sni = server_name(hello)
        except NotClientHello as exc:
            self._decide("deny", "connect", host, port, f"not TLS: {exc}")
            return
        if sni is None or normalize_host(sni) != host:
            self._decide("deny", "connect", host, port, "SNI does not match CONNECT host", sni=sni)
            return
        up_reader, up_writer = await self._open(address, port, host, "connect")
        self._decide("allow", "connect", host, port, "allowlisted", address=address)
        up_writer.write(hello)
        await _pipe_both(reader, writer, up_reader, up_writer)

    async def _read_hello(self, reader: asyncio.StreamReader, host: str, port: int) -> bytes:
        data = b""
        try:
            while len(data) < MAX_HELLO_BYTES:
                chunk = await asyncio.wait_for(reader.read(16384), HEAD_TIMEOUT_S)
                if not chunk:
                    break
                data += chunk
                if hello_complete(data):
                    return data
        except NotClientHello:
            return data
        except TimeoutError:
            self._decide("deny", "connect", host, port, "no ClientHello in time")
            raise ConnectionError("no ClientHello") from None
        return data

    async def _forward(
        self,
        method: str,
        target: str,
        version: str,
        headers: list[str],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        url = urlsplit(target)
        if url.scheme != "http" or not url.hostname:
            self._decide("deny", "http", target, 0, "not an absolute http:// URL")
            raise Refused(
                400,
                "plain requests need an absolute http:// URL (use CONNECT for TLS)",
                logged=True,
            )
        host = normalize_host(url.hostname)
        port = url.port or 80
        for line in headers:
            name, _, value = line.partition(":")
            if name.strip().lower() == "host":
                header_host, _ = _split_host_port(value.strip(), default_port=80)
                if header_host != host:
                    self._decide(
                        "deny",
                        "http",
                        host,
                        port,
                        "Host header differs from URL",
                        header_host=header_host,
                    )
                    raise Refused(403, "Host header differs from the request URL", logged=True)
        self._check_name(host, port, "http")
        address = await self._pin(host, port, "http")
        up_reader, up_writer = await self._open(address, port, host, "http")
        self._decide("allow", "http", host, port, "allowlisted", address=address)
        path = url.path or "/"
        if url.query:
            path += "?" + url.query
        kept = [
            line for line in headers if line.partition(":")[0].strip().lower() not in _HOP_HEADERS
        ]
        head = "\r\n".join([f"{method} {path} {version}", *kept, "Connection: close", "", ""])
        up_writer.write(head.encode("latin-1"))
        await _pipe_both(reader, writer, up_reader, up_writer)

    def _decide(
        self, decision: str, kind: str, host: str, port: int, reason: str, **extra: object
    ) -> None:
        log.info(
            "egress", decision=decision, kind=kind, host=host, port=port, reason=reason, **extra
        )


def _split_host_port(text: str, default_port: int | None) -> tuple[str, int]:
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise Refused(400, f"malformed host {text!r}")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    elif ":" in text:
        raise Refused(400, f"malformed host {text!r}")
    else:
        host, port_text = text, ""
    if not port_text:
        if default_port is None:
            raise Refused(400, f"CONNECT target {text!r} needs host:port")
        return normalize_host(host), default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise Refused(400, f"bad port in {text!r}")
    return normalize_host(host), int(port_text)


async def _reply(writer: asyncio.StreamWriter, status: int, reason: str) -> None:
    phrases = {400: "Bad Request", 403: "Forbidden", 502: "Bad Gateway", 503: "Busy"}
    phrase = phrases.get(status, "Error")
    body = f"mezzo sandbox egress: {reason}\n".encode()
    with contextlib.suppress(ConnectionError):
        writer.write(
            f"HTTP/1.1 {status} {phrase}\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass


async def _pipe_both(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    up_reader: asyncio.StreamReader,
    up_writer: asyncio.StreamWriter,
) -> None:
    try:
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
    finally:
        up_writer.close()
