"""A Redis store that cannot start says why in one clear error, never a bare traceback."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio
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


class OldRedis:
    """Answers as a real `redis-server` of `version` (< 6.0) would, and records what it was sent.

    What a client sends while it connects is modelled: `CLIENT SETNAME` (Redis ≥ 2.6.9; other
    `CLIENT` subcommands such as 7.2's `SETINFO` are refused), `PING`, `INFO`, `SELECT`, and the
    `GET` and `SET NX` of the queues' partition count that the store does at open. Every other
    command, `HELLO` (Redis 6) included, gets that version's unknown-command error.
    """

    def __init__(self, version: str, *, info: bytes | None = None) -> None:
        self.version = tuple(int(part) for part in version.split("."))
        assert self.version < (6, 0), "a server with HELLO is not modelled"
        self.info = b"# Server\r\nredis_version:%s\r\n" % version.encode()
        if info is not None:
            self.info = info
        self.received: list[list[str]] = []
        self.values: dict[str, str] = {}

    def answer(self, words: list[str]) -> bytes:
        command = words[0].upper()
        if command == "PING":
            return b"+PONG\r\n"
        if command == "INFO":
            return b"$%d\r\n%s\r\n" % (len(self.info), self.info)
        if command == "SELECT":
            return b"+OK\r\n"
        if command == "GET" and len(words) == 2 and self.version >= (2, 0):
            value = self.values.get(words[1])
            if value is None:
                return b"$-1\r\n"
            return b"$%d\r\n%s\r\n" % (len(value), value.encode())
        if command == "SET" and words[3:] == ["NX"] and self.version >= (2, 6, 12):
            self.values.setdefault(words[1], words[2])
            return b"+OK\r\n"
        if command == "CLIENT" and self.version >= (2, 6, 9):
            if words[1].upper() == "SETNAME":
                return b"+OK\r\n"
            return (
                f"-ERR Unknown subcommand or wrong number of arguments for '{words[1]}'. "
                "Try CLIENT HELP\r\n"
            ).encode()
        if self.version >= (5, 0):
            args = "".join(f"`{word}`, " for word in words[1:])
            return (
                f"-ERR unknown command `{words[0]}`, with args beginning with: {args}\r\n".encode()
            )
        return f"-ERR unknown command '{words[0]}'\r\n".encode()

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            if not line.startswith(b"*"):
                continue
            words = []
            for _ in range(int(line[1:])):
                size = int((await reader.readline())[1:])
                words.append((await reader.readexactly(size + 2))[:-2].decode())
            self.received.append(words)
            writer.write(self.answer(words))
            await writer.drain()
        writer.close()


@pytest.mark.parametrize("version", ["4.0.14", "3.2.12", "2.8.24"])
async def test_a_redis_without_streams_is_refused_at_open(version: str) -> None:
    """A Redis older than 5.0 (no Streams, no HELLO) is refused by version, in mezzo's words."""
    async for port in _serve(OldRedis(version)):
        with pytest.raises(RedisConfigError, match=rf"{re.escape(version)}.*5\.0 or later"):
            await RedisStore(f"redis://127.0.0.1:{port}/0").open()


@pytest.mark.parametrize("version", ["5.0.14", "5.0.0"])
async def test_a_redis_5_without_hello_is_opened_over_resp2(version: str) -> None:
    """Redis 5 has Streams but no HELLO: mezzo opens it, asking for RESP2 without HELLO."""
    server = OldRedis(version)
    async for port in _serve(server):
        store = RedisStore(f"redis://127.0.0.1:{port}/3")
        await store.open()
        await store.close()
    assert store.server_version == (5, 0)
    assert [words for words in server.received if words[0].upper() == "HELLO"] == []
    assert ["SELECT", "3"] in server.received


async def test_mezzo_speaks_resp2_to_a_redis_that_offers_resp3() -> None:
    prefix = f"resp-{uuid.uuid4().hex[:8]}"
    store = RedisStore("redis://127.0.0.1:6379/0", prefix=prefix)
    await store.open()
    admin = redis.asyncio.Redis(port=6379, protocol=2, decode_responses=True)
    try:
        info = await admin.info("server")
        if tuple(int(p) for p in info["redis_version"].split(".")[:2]) < (7, 0):
            pytest.skip("CLIENT LIST shows the protocol from Redis 7.0 on")
        mine = [c for c in await admin.client_list() if c["name"].startswith(prefix)]
        assert mine, "the store holds a connection after open"
        assert {c["resp"] for c in mine} == {"2"}
    finally:
        await admin.aclose()
        await store.close()


@pytest.mark.parametrize(
    ("server", "message"),
    [
        # Redis < 2.6.9 has no CLIENT SETNAME: the connection setup itself is refused.
        (OldRedis("2.4.18"), r"refused mezzo's connection setup .*CLIENT.*5\.0 or later"),
        # A RESP server that will not say which Redis it is cannot be checked for Streams.
        (OldRedis("5.0.0", info=b"# Server\r\nuptime_in_seconds:5\r\n"), r"does not say"),
        (OldRedis("5.0.0", info=b"# Server\r\nredis_version:unstable\r\n"), r"'unstable'"),
    ],
)
async def test_a_server_that_cannot_be_checked_is_refused_at_open(
    server: OldRedis, message: str
) -> None:
    async for port in _serve(server):
        with pytest.raises(RedisConfigError, match=message):
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
