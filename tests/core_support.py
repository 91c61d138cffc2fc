"""Helpers for the core's tests: mezzo servers (in a thread or a subprocess) around the stub LLM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from mezzo.config import RouteConfig, Settings
from mezzo.stub.server import StubServer

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def core_settings(data_dir: Path, stub: StubServer, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "routes": {"default": RouteConfig(primary="openai:stub-model")},
        "openai_base_url": stub.base_url,
        "openai_api_key": "test",
        "openai_api": "chat",
        "model_tokenizers": {"stub-model": "mezzo-stub"},
        "retry_base_seconds": 0.05,
        "retry_max_seconds": 0.5,
        "lease_seconds": 5.0,
    }
    values.update(overrides)
    return Settings(**values)


class ServerThread:
    """`mezzo serve` in a background thread of this process, on a free loopback port."""

    def __init__(self, settings: Settings, *, workers: bool = True, store: Any = None) -> None:
        """`store`: a store object to serve instead of the one `settings` names (a Redis store
        under a key prefix of the test's own, say)."""
        import uvicorn

        from mezzo.server.app import build_asgi
        from mezzo.server.ws_frames import FramedWebSocketProtocol
        from mezzo.service import Mezzo

        self.mezzo = Mezzo(settings, store=store)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(
                build_asgi(self.mezzo, workers=workers),
                host="127.0.0.1",
                port=self.port,
                log_level="warning",
                timeout_graceful_shutdown=2,
                ws=FramedWebSocketProtocol,  # as `mezzo serve` has it
            )
        )
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=lambda: self.loop.run_until_complete(self.server.serve()), daemon=True
        )

    def call(self, coroutine: Any) -> Any:
        """Run a coroutine on the server's own event loop (its store lives there)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(30)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("mezzo server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


class ServeProcess:
    """A real `mezzo serve` (or `mezzo worker`) subprocess: killable, restartable."""

    def __init__(self, args: list[str], env: dict[str, str], port: int | None = None) -> None:
        self.args = args
        self.env = env
        self.port = port
        self.url = f"http://127.0.0.1:{port}" if port else ""
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = Path(env["MEZZO_DATA_DIR"]) / f"{args[0]}-{time.time_ns()}.log"

    def start(self) -> ServeProcess:
        Path(self.env["MEZZO_DATA_DIR"]).mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mezzo.cli", *self.args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        if self.port:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if (
                        httpx.get(f"{self.url}/readyz", timeout=1, trust_env=False).status_code
                        == 200
                    ):
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"{self.args} did not start:\n{self.log.read_text()}")
                time.sleep(0.1)
        return self

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def terminate(self, timeout: float = 30) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)


def process_env(data_dir: Path, stub: StubServer, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEZZO_", "OPENAI_"))}
    env.update(
        {
            "MEZZO_DATA_DIR": str(data_dir),
            "MEZZO_ROUTES": '{"default": {"primary": "openai:stub-model"}}',
            "MEZZO_OPENAI_API": "chat",
            "MEZZO_MODEL_TOKENIZERS": '{"stub-model": "mezzo-stub"}',
            "MEZZO_RETRY_BASE_SECONDS": "0.05",
            "MEZZO_RETRY_MAX_SECONDS": "0.5",
            "MEZZO_LEASE_SECONDS": "3",
            "OPENAI_BASE_URL": stub.base_url,
            "OPENAI_API_KEY": "test",
        }
    )
    env.update(extra)
    return env


def events(url: str, ws: str, types: str | None = None) -> list[dict[str, Any]]:
    """A workspace's whole event log over HTTP (optionally only some types)."""
    params: dict[str, Any] = {"limit": 10000}
    if types:
        params["types"] = types
    return httpx.get(f"{url}/v1/workspaces/{ws}/events", params=params, trust_env=False).json()


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@contextlib.contextmanager
def capture_logs(logger: str = "mezzo") -> Iterator[list[dict[str, Any]]]:
    """mezzo's log records while the block runs (from any thread), each as its key-value pairs
    plus `event` (the message) and `log_level`."""
    target = logging.getLogger(logger)
    records: list[dict[str, Any]] = []

    def keep(record: logging.LogRecord) -> None:
        records.append(
            {**vars(record), "event": record.getMessage(), "log_level": record.levelname.lower()}
        )

    handler = logging.Handler()
    handler.emit = keep  # type: ignore[method-assign]
    level = target.level
    target.setLevel(logging.DEBUG)
    target.addHandler(handler)
    try:
        yield records
    finally:
        target.removeHandler(handler)
        target.setLevel(level)
