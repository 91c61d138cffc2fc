"""Fixtures shared by the core's tests: the stub LLM on loopback and mezzo servers around it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core_support import ServeProcess, ServerThread, core_settings
from mezzo.stub.config import StubConfig
from mezzo.stub.server import StubServer


@pytest.fixture
def stub() -> Iterator[StubServer]:
    with StubServer(StubConfig()) as server:
        yield server


@pytest.fixture
def server(tmp_path: Path, stub: StubServer) -> Iterator[ServerThread]:
    with ServerThread(core_settings(tmp_path / "data", stub)) as running:
        yield running


@pytest.fixture
def processes() -> Iterator[list[ServeProcess]]:
    started: list[ServeProcess] = []
    yield started
    for proc in started:
        proc.kill()
