"""The SDK in both of its modes: over HTTP against a real server on loopback, and embedded."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core_support import ServerThread, core_settings
from mezzo.client import shutdown
from mezzo.stub.server import StubServer


@pytest.fixture(params=["http", "embedded"])
async def mode(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    stub: StubServer,
) -> AsyncIterator[str]:
    for name in ("MEZZO_URL", "MEZZO_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    if request.param == "http":
        with ServerThread(core_settings(tmp_path / "server", stub)) as server:
            monkeypatch.setenv("MEZZO_URL", server.url)
            yield "http"
        return
    monkeypatch.setenv("MEZZO_DATA_DIR", str(tmp_path / "embedded"))
    monkeypatch.setenv("MEZZO_ROUTES", '{"default": {"primary": "openai:stub-model"}}')
    monkeypatch.setenv("MEZZO_OPENAI_API", "responses")
    monkeypatch.setenv("OPENAI_BASE_URL", stub.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "test")
    try:
        yield "embedded"
    finally:
        await shutdown()
