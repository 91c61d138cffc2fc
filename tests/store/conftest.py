from __future__ import annotations

import importlib.util
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mezzo.store.base import Store

BACKENDS = ["sqlite"]
if importlib.util.find_spec("mezzo.store.redis") is not None:
    BACKENDS.append("redis")


async def open_store(backend: str, tmp_path: Path) -> Store:
    if backend == "sqlite":
        from mezzo.store.sqlite import SQLiteStore

        store: Store = SQLiteStore(tmp_path / "mezzo.sqlite3")
    else:
        from mezzo.store.redis import RedisStore  # type: ignore[import-not-found]

        store = RedisStore("redis://127.0.0.1:6379/0", prefix=f"test-{uuid.uuid4().hex[:8]}")
    await store.open()
    return store


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    opened = await open_store(request.param, tmp_path)
    try:
        yield opened
    finally:
        await opened.close()
