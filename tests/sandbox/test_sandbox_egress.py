"""The egress proxy over its real Unix socket, with real HTTP/TLS clients and servers on loopback."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sandbox_support import (
    ALLOWED,
    LoopbackServer,
    capture_logs,
    loopback_only,
    resolve_to_loopback,
)

from mezzo.sandbox.egress import EgressProxy, Resolver, is_public_address
from mezzo.sandbox.sni import NotClientHello, hello_complete, server_name


def client_hello(sni: str | None) -> bytes:
    context = ssl.create_default_context()
    context.check_hostname = False
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=sni)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def test_sni_is_read_from_a_real_client_hello() -> None:
    hello = client_hello(ALLOWED)
    assert hello_complete(hello)
    assert server_name(hello) == ALLOWED
    assert server_name(client_hello(None)) is None
    assert not hello_complete(hello[:3])
    assert not hello_complete(hello[: len(hello) // 2])
    with pytest.raises(NotClientHello):
        hello_complete(b"GET / HTTP/1.1\r\n\r\n")
    with pytest.raises(NotClientHello):
        server_name(hello[:40])


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("127.0.0.1", False), ("10.2.3.4", False), ("172.16.0.1", False), ("192.168.1.1", False),
        ("169.254.169.254", False), ("100.64.0.1", False), ("100.100.100.200", False),
        ("0.0.0.0", False), ("224.0.0.1", False), ("::1", False), ("fe80::1", False),
        ("fd00:ec2::254", False), ("::ffff:127.0.0.1", False), ("::ffff:10.0.0.1", False),
        ("8.8.8.8", True), ("2606:4700:4700::1111", True),
    ],
)  # fmt: skip
def test_only_public_addresses_pass(address: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is public


@pytest.fixture
async def proxy_socket(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    resolver, policy, ports = request.param
    proxy = EgressProxy([ALLOWED], allowed_ports=ports, resolver=resolver, address_allowed=policy)
    path = str(tmp_path / "proxy.sock")
    await proxy.start(path)
    yield path
    await proxy.close()


async def exchange(socket_path: str, request: bytes) -> bytes:
    reader, writer = await asyncio.open_unix_connection(socket_path)
    writer.write(request)
    answer = await reader.read()
    writer.close()
    return answer


def strict(ports: tuple[int, ...] = (80, 443)) -> tuple[Resolver, object, tuple[int, ...]]:
    return (resolve_to_loopback, is_public_address, ports)


@pytest.mark.parametrize("proxy_socket", [strict()], indirect=True)
async def test_connect_to_a_name_not_on_the_list_is_forbidden(proxy_socket: str) -> None:
    with capture_logs() as logs:
        answer = await exchange(proxy_socket, b"CONNECT evil.test:443 HTTP/1.1\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 403 Forbidden")
    assert logs[-1]["decision"] == "deny" and logs[-1]["reason"] == "host not in allowlist"


@pytest.mark.parametrize("proxy_socket", [strict()], indirect=True)
async def test_allowed_name_pointing_at_loopback_is_forbidden(proxy_socket: str) -> None:
    with capture_logs() as logs:
        answer = await exchange(proxy_socket, f"CONNECT {ALLOWED}:443 HTTP/1.1\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 403 Forbidden")
    assert logs[-1]["reason"] == "resolves only to non-public addresses"
    assert logs[-1]["addresses"] == ["127.0.0.1"]


@pytest.mark.parametrize("proxy_socket", [strict()], indirect=True)
async def test_port_outside_the_allowed_ports_is_forbidden(proxy_socket: str) -> None:
    with capture_logs() as logs:
        answer = await exchange(proxy_socket, f"CONNECT {ALLOWED}:22 HTTP/1.1\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 403 Forbidden")
    assert logs[-1]["reason"] == "port not allowed"


@pytest.mark.parametrize("proxy_socket", [strict()], indirect=True)
@pytest.mark.parametrize(
    "request_head",
    [b"NONSENSE\r\n\r\n", b"GET /relative HTTP/1.1\r\nHost: allowed.test\r\n\r\n",
     b"CONNECT allowed.test HTTP/1.1\r\n\r\n", b"CONNECT a:b:c HTTP/1.1\r\n\r\n"],
)  # fmt: skip
async def test_malformed_requests_get_400(proxy_socket: str, request_head: bytes) -> None:
    assert (await exchange(proxy_socket, request_head)).startswith(b"HTTP/1.1 400 Bad Request")


@pytest.fixture
async def permissive_socket(
    tmp_path: Path, http_server: LoopbackServer, https_server: LoopbackServer
) -> AsyncIterator[str]:
    """A proxy that may connect to 127.0.0.1, where the test servers are: for allowed traffic."""
    proxy = EgressProxy(
        [ALLOWED],
        allowed_ports=(http_server.port, https_server.port),
        resolver=resolve_to_loopback,
        address_allowed=loopback_only,
    )
    path = str(tmp_path / "proxy.sock")
    await proxy.start(path)
    yield path
    await proxy.close()


async def test_plain_http_to_an_allowed_name_is_forwarded_and_pinned(
    permissive_socket: str, http_server: LoopbackServer
) -> None:
    head = f"GET http://{ALLOWED}:{http_server.port}/pinned?q=1 HTTP/1.1\r\n"
    head += f"Host: {ALLOWED}:{http_server.port}\r\nProxy-Connection: keep-alive\r\n\r\n"
    with capture_logs() as logs:
        answer = await exchange(permissive_socket, head.encode())
    assert answer.startswith(b"HTTP/1.0 200") and answer.endswith(b"hello /pinned?q=1")
    assert f"{ALLOWED}:{http_server.port} /pinned?q=1" in http_server.requests
    assert logs[-1]["decision"] == "allow" and logs[-1]["address"] == "127.0.0.1"


async def test_host_header_that_differs_from_the_url_is_forbidden(
    permissive_socket: str, http_server: LoopbackServer
) -> None:
    head = f"GET http://{ALLOWED}:{http_server.port}/x HTTP/1.1\r\nHost: evil.test\r\n\r\n"
    answer = await exchange(permissive_socket, head.encode())
    assert answer.startswith(b"HTTP/1.1 403 Forbidden")
    assert not any(r.endswith(" /x") for r in http_server.requests)


async def tls_through(socket_path: str, port: int, sni: str, cafile: Path) -> bytes:
    reader, writer = await asyncio.open_unix_connection(socket_path)
    writer.write(f"CONNECT {ALLOWED}:{port} HTTP/1.1\r\n\r\n".encode())
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
    context = ssl.create_default_context(cafile=cafile)
    context.check_hostname = False
    try:
        await writer.start_tls(context, server_hostname=sni)
        writer.write(
            f"GET /tunnel HTTP/1.1\r\nHost: {ALLOWED}\r\nConnection: close\r\n\r\n".encode()
        )
        return await reader.read()
    finally:
        writer.close()


async def test_tls_with_matching_sni_goes_through(
    permissive_socket: str, https_server: LoopbackServer
) -> None:
    assert https_server.cert is not None
    answer = await tls_through(permissive_socket, https_server.port, ALLOWED, https_server.cert)
    assert answer.endswith(b"hello /tunnel")


async def test_tls_with_mismatched_sni_is_cut_before_upstream(
    permissive_socket: str, https_server: LoopbackServer
) -> None:
    assert https_server.cert is not None
    before = len(https_server.requests)
    with capture_logs() as logs, pytest.raises((ssl.SSLError, ConnectionError)):
        await tls_through(permissive_socket, https_server.port, "evil.test", https_server.cert)
    assert len(https_server.requests) == before
    assert logs[-1]["reason"] == "SNI does not match CONNECT host"
    assert logs[-1]["sni"] == "evil.test"


async def test_resolver_is_asked_once_and_the_checked_address_is_used(
    tmp_path: Path, http_server: LoopbackServer
) -> None:
    calls: list[str] = []

    async def resolver(host: str, port: int) -> list[str]:
        calls.append(host)
        return ["10.9.9.9", "127.0.0.1"]

    proxy = EgressProxy(
        [ALLOWED], allowed_ports=[http_server.port], resolver=resolver,
        address_allowed=loopback_only,
    )  # fmt: skip
    path = str(tmp_path / "proxy.sock")
    await proxy.start(path)
    try:
        with capture_logs() as logs:
            answer = await exchange(
                path, f"GET http://{ALLOWED}:{http_server.port}/once HTTP/1.1\r\n\r\n".encode()
            )
    finally:
        await proxy.close()
    assert answer.endswith(b"hello /once")
    assert calls == [ALLOWED]
    assert logs[-1]["address"] == "127.0.0.1"


@pytest.mark.parametrize("proxy_socket", [strict()], indirect=True)
async def test_connections_beyond_the_cap_are_refused(proxy_socket: str) -> None:
    from mezzo.sandbox.egress import MAX_CONNECTIONS

    held = [await asyncio.open_unix_connection(proxy_socket) for _ in range(MAX_CONNECTIONS)]
    try:
        answer = await exchange(proxy_socket, b"CONNECT allowed.test:443 HTTP/1.1\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 503")
    finally:
        for _, writer in held:
            writer.close()


@pytest.mark.parametrize("proxy_socket", [strict()], indirect=True)
async def test_every_refusal_is_logged_once(proxy_socket: str) -> None:
    with capture_logs() as logs:
        await exchange(proxy_socket, b"NONSENSE\r\n\r\n")
        await exchange(proxy_socket, b"CONNECT evil.test:443 HTTP/1.1\r\n\r\n")
    assert [(entry["decision"], entry["reason"]) for entry in logs] == [
        ("deny", "malformed request line"),
        ("deny", "host not in allowlist"),
    ]
