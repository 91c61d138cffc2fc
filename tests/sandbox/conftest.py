"""Fixtures for the sandbox tests: a real Sandbox, loopback HTTP/HTTPS servers, a test resolver."""

from __future__ import annotations

import http.server
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sandbox_support import ALLOWED, LoopbackServer, loopback_only, resolve_to_loopback

from mezzo.sandbox.runner import Sandbox


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    if shutil.which("bwrap") is None:
        pytest.fail("bubblewrap is not installed (scripts/setup.sh installs it)")
    with Sandbox() as box:
        box.check()
        yield box


@pytest.fixture(scope="session")
def net_sandbox() -> Iterator[Sandbox]:
    """Resolves every name to 127.0.0.1 and lets the proxy connect there (allowed traffic)."""
    with Sandbox(resolver=resolve_to_loopback, address_allowed=loopback_only) as box:
        yield box


@pytest.fixture(scope="session")
def strict_net_sandbox() -> Iterator[Sandbox]:
    """Resolves every name to 127.0.0.1 under the default address policy (must refuse)."""
    with Sandbox(resolver=resolve_to_loopback) as box:
        yield box


def _serve(server: http.server.ThreadingHTTPServer, record: LoopbackServer) -> None:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            record.requests.append(f"{self.headers.get('Host')} {self.path}")
            body = f"hello {self.path}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server.RequestHandlerClass = Handler
    threading.Thread(target=server.serve_forever, daemon=True).start()


@pytest.fixture(scope="session")
def http_server() -> Iterator[LoopbackServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    record = LoopbackServer(port=server.server_address[1])
    _serve(server, record)
    yield record
    server.shutdown()


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
         "-subj", f"/CN={ALLOWED}", "-addext", f"subjectAltName=DNS:{ALLOWED}"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="session")
def https_server(tls_cert: tuple[Path, Path]) -> Iterator[LoopbackServer]:
    cert, key = tls_cert
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    record = LoopbackServer(port=server.server_address[1], cert=cert)
    _serve(server, record)
    yield record
    server.shutdown()
