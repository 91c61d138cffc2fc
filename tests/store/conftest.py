from __future__ import annotations

import importlib.util
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from mezzo.store.base import Store

if TYPE_CHECKING:
    from redis_cluster import RedisClusterProcess

BACKENDS = ["sqlite"]
if importlib.util.find_spec("mezzo.store.redis") is not None:
    BACKENDS.append("redis")


async def open_store(backend: str, where: str) -> Store:
    """A store of `backend` on `where`: the SQLite file, or the Redis key prefix."""
    if backend == "sqlite":
        from mezzo.store.sqlite import SQLiteStore

        store: Store = SQLiteStore(Path(where))
    else:
        from mezzo.store.redis import RedisStore  # type: ignore[import-not-found]

        store = RedisStore("redis://127.0.0.1:6379/0", prefix=where)
    await store.open()
    return store


@pytest.fixture(params=BACKENDS)
def store_location(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    if request.param == "sqlite":
        return "sqlite", str(tmp_path / "mezzo.sqlite3")
    return "redis", f"test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def store(store_location: tuple[str, str]) -> AsyncIterator[Store]:
    opened = await open_store(*store_location)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def store_reopened(store_location: tuple[str, str], store: Store) -> AsyncIterator[Store]:
    """A second store on the same data: another process, which knows only what is stored."""
    opened = await open_store(*store_location)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture(scope="session")
def loopback_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterProcess]:
    """3 primaries + 3 replicas on loopback, started once per test session."""
    from redis_cluster import RedisClusterProcess

    with RedisClusterProcess(tmp_path_factory.mktemp("redis-cluster")) as cluster:
        yield cluster
