"""A Redis store that cannot start says why in one clear error, never a bare traceback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis_process import RedisProcess, free_port

from mezzo.protocol import NewEvent
from mezzo.store.base import StoreUnavailable
from mezzo.store.redis import RedisConfigError, RedisStore


def test_a_url_that_is_not_redis_is_a_config_error() -> None:
    with pytest.raises(RedisConfigError, match="not a Redis URL"):
        RedisStore("http://127.0.0.1:6379/0")


def test_a_bad_port_or_database_is_a_config_error() -> None:
    with pytest.raises(RedisConfigError, match="database number"):
        RedisStore("redis://127.0.0.1:6379/notanumber")
    with pytest.raises(RedisConfigError, match="bad Redis URL"):
        RedisStore("redis://127.0.0.1:notaport/0")


async def test_refused_connection_is_store_unavailable() -> None:
    port = free_port()
    with pytest.raises(StoreUnavailable, match=f"127.0.0.1:{port}.*unreachable"):
        await RedisStore(f"redis://127.0.0.1:{port}/0").open()


async def test_wrong_password_is_named_and_not_echoed(tmp_path: Path) -> None:
    with RedisProcess(tmp_path, password="right-one") as server:
        wrong = f"redis://:wrong-one@127.0.0.1:{server.port}/0"
        with pytest.raises(StoreUnavailable, match="credentials") as info:
            await RedisStore(wrong).open()
        assert "wrong-one" not in str(info.value)
        with pytest.raises(StoreUnavailable, match="password"):
            await RedisStore(f"redis://127.0.0.1:{server.port}/0").open()
        store = RedisStore(server.url)
        await store.open()
        assert await store.head("ws") == 0
        await store.close()


async def _serve(handler: object) -> AsyncIterator[int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)  # type: ignore[arg-type]
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def test_a_server_that_is_not_redis_is_store_unavailable() -> None:
    async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    async for port in _serve(http):
        with pytest.raises(StoreUnavailable, match=f"127.0.0.1:{port}"):
            await RedisStore(f"redis://127.0.0.1:{port}/0").open()


async def test_a_redis_without_streams_is_refused_at_open() -> None:
    """A RESP server that says it is Redis 4.0 (no Streams) is refused by version."""

    async def old_redis(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            if not line.startswith(b"*"):
                continue
            words = []
            for _ in range(int(line[1:])):
                size = int((await reader.readline())[1:])
                words.append((await reader.readexactly(size + 2))[:-2].decode().upper())
            if words[0] == "INFO":
                body = b"# Server\r\nredis_version:4.0.14\r\n"
                writer.write(b"$%d\r\n%s\r\n" % (len(body), body))
            elif words[0] == "PING":
                writer.write(b"+PONG\r\n")
            else:
                writer.write(b"+OK\r\n")
            await writer.drain()
        writer.close()

    async for port in _serve(old_redis):
        with pytest.raises(RedisConfigError, match=r"4\.0\.14.*5\.0 or later"):
            await RedisStore(f"redis://127.0.0.1:{port}/0").open()


async def test_redis_going_away_raises_store_unavailable_then_recovers(tmp_path: Path) -> None:
    server = RedisProcess(tmp_path, "--appendonly", "yes", "--appendfsync", "always").start()
    store = RedisStore(server.url, prefix="away")
    try:
        await store.open()
        await store.append("ws", "r1", [NewEvent(type="run_queued")], 0)
        server.kill()
        with pytest.raises(StoreUnavailable, match="unreachable"):
            await store.append("ws", "r1", [NewEvent(type="run_started")], 1)
        with pytest.raises(StoreUnavailable):
            await store.lease("q", "w1", 1, 30)
        server.start()
        # The same store object reconnects by itself once the server is back.
        stored = await store.append("ws", "r1", [NewEvent(type="run_started")], 1)
        assert [e.seq for e in stored] == [2]
    finally:
        await store.close()
        server.kill()
