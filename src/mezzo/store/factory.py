"""Open the store a URL names: `sqlite:///path` (embedded default), `redis://host:port/db` (one
Redis) or `redis+cluster://host:port[,host:port...]` (a Redis Cluster; docs/redis.md)."""

from __future__ import annotations

from mezzo.errors import ConfigurationError
from mezzo.store.base import Store

REDIS_PREFIXES = ("redis://", "rediss://", "unix://", "redis+cluster://", "rediss+cluster://")


def store_for_url(url: str, *, sqlite_synchronous: str = "FULL") -> Store:
    if url.startswith("sqlite:///"):
        from mezzo.store.sqlite import SQLiteStore

        path = url.removeprefix("sqlite:///") or "mezzo.sqlite3"
        return SQLiteStore(path, synchronous=sqlite_synchronous)
    if url.startswith(REDIS_PREFIXES):
        from mezzo.store.redis import RedisStore  # type: ignore[import-not-found,unused-ignore]

        return RedisStore(url, prefix="mezzo")  # type: ignore[no-any-return,unused-ignore]
    raise ConfigurationError(
        f"unknown store URL {url!r}: use sqlite:///PATH (embedded), redis://HOST:PORT/DB or "
        "redis+cluster://HOST:PORT[,HOST:PORT...]"
    )


async def open_store(url: str, *, sqlite_synchronous: str = "FULL") -> Store:
    store = store_for_url(url, sqlite_synchronous=sqlite_synchronous)
    await store.open()
    return store
