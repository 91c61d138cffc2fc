"""Run the stub LLM server on a free loopback port in a background thread.

with StubServer(StubConfig(latency_ms=50)) as stub:
    client = AsyncOpenAI(base_url=stub.base_url, api_key="test")
    stub.configure(fail_503=1.0)
    assert stub.stats()["requests"] == ...
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import httpx
import uvicorn

from mezzo.stub.config import StubConfig
from mezzo.stub.stub_llm import create_stub_app


def bind_loopback(port: int = 0, host: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


# Longer than clients keep idle pooled connections, so a request never meets a connection the
# server is closing (a spurious connection error for a client that does not retry).
KEEP_ALIVE_S = 120


def server_config(app: Any, log_level: str = "warning", **options: Any) -> uvicorn.Config:
    return uvicorn.Config(
        app, log_level=log_level, lifespan="off", timeout_keep_alive=KEEP_ALIVE_S, **options
    )


class StubServer:
    """The stub on a real socket; `base_url` ends in `/v1` like OpenAI's."""

    def __init__(self, config: StubConfig | None = None, *, port: int = 0) -> None:
        self.app = create_stub_app(config or StubConfig())
        self._socket = bind_loopback(port)
        self.port: int = self._socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.base_url = f"{self.url}/v1"
        self._server = uvicorn.Server(server_config(self.app, timeout_graceful_shutdown=1))
        self._thread = threading.Thread(target=self._run, name=f"stub-llm:{self.port}", daemon=True)

    def _run(self) -> None:
        self._server.run(sockets=[self._socket])

    def start(self) -> StubServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the stub LLM server did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)
        self._socket.close()

    def __enter__(self) -> StubServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # Admin calls go over HTTP like any client's, so they also work against a remote stub.

    def configure(self, **changes: Any) -> dict[str, Any]:
        response = httpx.post(f"{self.url}/_stub/config", json=changes, trust_env=False)
        response.raise_for_status()
        return response.json()

    def stats(self) -> dict[str, Any]:
        return httpx.get(f"{self.url}/_stub/stats", trust_env=False).json()

    def wait_for(
        self, condition: Callable[[dict[str, Any]], bool], timeout: float = 5.0
    ) -> dict[str, Any]:
        """Poll `stats()` until `condition` holds; the stats, or AssertionError at the timeout."""
        deadline = time.monotonic() + timeout
        while not condition(stats := self.stats()):
            if time.monotonic() > deadline:
                raise AssertionError(f"the stub's stats never met the condition: {stats}")
            time.sleep(0.01)
        return stats

    def reset(self) -> None:
        httpx.post(f"{self.url}/_stub/reset", trust_env=False).raise_for_status()
