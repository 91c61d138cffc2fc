"""Slow and abusive clients against a real `mezzo serve` process: a flood from one key, a
WebSocket subscriber that never reads, thousands of idle connections, headers and bodies at
the limits. The server keeps answering everyone else, with its memory sampled."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets

from core_support import ServeProcess, ServerThread, core_settings, free_port, process_env
from mezzo.server.auth import create_key
from mezzo.stub.server import StubServer


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.fixture
def api(tmp_path: Path, stub: StubServer) -> Iterator[ServeProcess]:
    """`mezzo serve` without workers: runs stay queued, so events are only what we submit."""
    port = free_port()
    env = process_env(tmp_path / "data", stub, MEZZO_MAX_BODY_BYTES=str(1 << 20))
    proc = ServeProcess(["serve", "--port", str(port), "--no-workers"], env, port).start()
    try:
        yield proc
    finally:
        proc.kill()


def test_a_flood_from_one_key_gets_429_with_retry_after(tmp_path: Path, stub: StubServer) -> None:
    settings = core_settings(tmp_path, stub, rate_limit_per_minute=60, rate_limit_burst=5)
    with ServerThread(settings, workers=False) as server:
        flooder = server.call(create_key(server.mezzo.store, "a"))
        neighbour = server.call(create_key(server.mezzo.store, "b"))
        client = httpx.Client(base_url=server.url, trust_env=False)
        answers = [
            client.get("/v1/workspaces", headers={"authorization": f"Bearer {flooder}"})
            for _ in range(30)
        ]
        codes = [a.status_code for a in answers]
        assert codes.count(200) >= 5 and codes.count(429) >= 20, codes
        refused = next(a for a in answers if a.status_code == 429)
        assert int(refused.headers["retry-after"]) >= 1
        assert "too many requests" in refused.json()["error"]
        # Another key has its own allowance; health checks are never limited.
        ok = client.get("/v1/workspaces", headers={"authorization": f"Bearer {neighbour}"})
        assert ok.status_code == 200
        assert client.get("/healthz").status_code == 200
        text = client.get("/metrics", headers={"authorization": f"Bearer {flooder}"})
        assert text.status_code in (403, 429)


def test_made_up_keys_count_against_their_address_and_leave_no_entries(
    tmp_path: Path, stub: StubServer
) -> None:
    """Until a key is verified a request counts against its client's address: 300 made-up
    keys from one address are mostly 429, not 401, and leave one limiter entry, not 300; a
    valid key keeps its own allowance."""
    settings = core_settings(tmp_path, stub, rate_limit_per_minute=30, rate_limit_burst=5)
    with ServerThread(settings, workers=False) as server:
        valid = server.call(create_key(server.mezzo.store, "a"))
        client = httpx.Client(base_url=server.url, trust_env=False)
        codes = [
            client.get(
                "/v1/workspaces", headers={"authorization": f"Bearer mz_made-up-{i}"}
            ).status_code
            for i in range(300)
        ]
        assert set(codes) == {401, 429} and codes.count(429) >= 290, codes
        assert client.get("/v1/workspaces").status_code == 429  # no key: the same address
        assert client.get("/v1/workspaces?token=mz_nope").status_code == 429
        mine = client.get("/v1/workspaces", headers={"authorization": f"Bearer {valid}"})
        assert mine.status_code == 200
        database = server.mezzo.settings.store_url.removeprefix("sqlite:///")
        with sqlite3.connect(database) as conn:
            entries = conn.execute("SELECT key FROM rate_state WHERE key LIKE 'api:%'").fetchall()
        assert len(entries) == 2, entries  # the address's and the valid key's


def test_a_websocket_that_never_reads_does_not_hold_the_server(api: ServeProcess) -> None:
    client = httpx.Client(base_url=api.url, trust_env=False, timeout=30)
    client.post("/v1/workspaces", json={"id": "w"}).raise_for_status()
    # A raw WebSocket handshake, then silence: this client never reads a byte again.
    silent = socket.create_connection(("127.0.0.1", api.port))
    silent.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    key = base64.b64encode(os.urandom(16)).decode()
    silent.sendall(
        (
            "GET /v1/workspaces/w/events HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    payload = "x" * 200_000
    runs = 160  # 32 MB of events the silent client is owed
    for i in range(runs):
        accepted = client.post("/v1/workspaces/w/runs", json={"input": f"{i} {payload}"})
        assert accepted.status_code == 202
        if i == 19:  # the allocator has seen this traffic; measure from here
            before = rss_bytes(api.proc.pid)  # type: ignore[union-attr]
    after = rss_bytes(api.proc.pid)  # type: ignore[union-attr]

    async def read_all() -> int:
        seen = 0
        async with websockets.connect(
            f"ws://127.0.0.1:{api.port}/v1/workspaces/w/events", max_size=None
        ) as ws:
            while seen < runs:
                event = json.loads(await asyncio.wait_for(ws.recv(), 30))
                seen += event["type"] == "run_queued"
        return seen

    # A reading subscriber still gets everything, and the server did not buffer the backlog.
    assert asyncio.run(read_all()) == runs
    assert after - before < (runs - 20) * len(payload) / 2, (before, after)
    silent.close()


def test_thousands_of_idle_connections(api: ServeProcess) -> None:
    before = rss_bytes(api.proc.pid)  # type: ignore[union-attr]
    idle = [socket.create_connection(("127.0.0.1", api.port)) for _ in range(2000)]
    try:
        answer = httpx.get(f"{api.url}/v1/workspaces", trust_env=False, timeout=30)
        assert answer.status_code == 200
        grown = rss_bytes(api.proc.pid) - before  # type: ignore[union-attr]
        assert grown < 2000 * 64 * 1024, grown  # well under 64 KiB per idle connection
    finally:
        for sock in idle:
            sock.close()
    assert httpx.get(f"{api.url}/healthz", trust_env=False).status_code == 200


def test_headers_and_bodies_at_the_limits(api: ServeProcess) -> None:
    client = httpx.Client(base_url=api.url, trust_env=False, timeout=30)
    client.post("/v1/workspaces", json={"id": "w"}).raise_for_status()
    limit = 1 << 20
    envelope = len(json.dumps({"input": ""}))
    at_limit = json.dumps({"input": "y" * (limit - envelope)})
    assert len(at_limit) == limit
    headers = {"content-type": "application/json"}
    assert (
        client.post("/v1/workspaces/w/runs", content=at_limit, headers=headers).status_code == 202
    )
    over = at_limit[:-2] + 'y"}'
    refused = client.post("/v1/workspaces/w/runs", content=over, headers=headers)
    assert refused.status_code == 413 and "limit" in refused.json()["error"]
    # Headers: up to 64 KiB in all are served; beyond, 431 before any route runs.
    assert client.get("/v1/workspaces", headers={"x-filler": "z" * 60_000}).status_code == 200
    huge = client.get("/v1/workspaces", headers={"x-filler": "z" * 200_000})
    assert huge.status_code == 431 and "headers" in huge.json()["error"]
    many = {f"x-header-{i}": "value" for i in range(10_000)}
    assert client.get("/v1/workspaces", headers=many).status_code == 431
    assert client.get("/healthz").status_code == 200
