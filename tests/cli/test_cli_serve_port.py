"""`mezzo serve --port 0` says the address it really listens on, once it listens."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest
from serve_support import Serve, serve_env


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.parametrize(
    ("host", "shown"),
    [
        ("127.0.0.1", r"127\.0\.0\.1"),
        pytest.param(
            "::1",
            r"\[::1\]",
            marks=pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback here"),
        ),
    ],
)
def test_port_0_prints_the_bound_address(tmp_path: Path, host: str, shown: str) -> None:
    with Serve(["--host", host, "--port", "0"], serve_env(tmp_path)) as serve:
        found = serve.wait_for(rf"on (http://{shown}:(\d+))$")
        url, port = found.group(1), int(found.group(2))
        assert port != 0
        # Printed once it listens: a script may connect as soon as it reads the line.
        assert httpx.get(f"{url}/readyz", trust_env=False).status_code == 200
        output = serve.stop()
    assert output.count(" on http://") == 1, output
