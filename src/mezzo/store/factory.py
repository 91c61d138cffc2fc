"""Open the store a URL names: `sqlite:///path` (embedded default) or `redis://host:port/db`."""

from __future__ import annotations

from mezzo.errors import ConfigurationError
from mezzo.store.base import Store


def store_for_url(url: str, *, sqlite_synchronous: str = "FULL") -> Store:
    if url.startswith("sqlite:///"):
        from mezzo.store.sqlite import SQLiteStore

        path = url.removeprefix("sqlite:///") or "mezzo.sqlite3"
        return SQLiteStore(path, synchronous=sqlite_synchronous)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from mezzo.store.redis import RedisStore  # type: ignore[import-not-found,unused-ignore]

        return RedisStore(url, prefix="mezzo")  # type: ignore[no-any-return,unused-ignore]
    raise ConfigurationError(
        f"unknown store URL {url!r}: use sqlite:///PATH (embedded) or redis://HOST:PORT/DB"
    )


async def open_store(url: str, *, sqlite_synchronous: str = "FULL") -> Store:
    store = store_for_url(url, sqlite_synchronous=sqlite_synchronous)
    await store.open()
    return store
