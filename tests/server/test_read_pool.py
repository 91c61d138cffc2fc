"""Store reads have threads of their own: with asyncio's default thread pool fully taken (file
indexing, synchronous tools), an API request that reads the store is still answered."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from core_support import ServerThread, core_settings
from mezzo.server.auth import create_key
from mezzo.stub.server import StubServer

DEFAULT_POOL = 2


def test_reads_do_not_queue_behind_the_default_thread_pool(
    tmp_path: Path, stub: StubServer
) -> None:
    with ServerThread(core_settings(tmp_path / "data", stub), workers=False) as server:
        key = server.call(create_key(server.mezzo.store, "acme"))
        headers = {"authorization": f"Bearer {key}"}
        with httpx.Client(base_url=server.url, headers=headers, trust_env=False) as client:
            assert client.post("/v1/workspaces", json={"id": "w1"}).status_code == 201
            release = threading.Event()

            async def occupy_default_pool() -> None:
                loop = asyncio.get_running_loop()
                loop.set_default_executor(ThreadPoolExecutor(DEFAULT_POOL))
                for _ in range(DEFAULT_POOL):
                    loop.run_in_executor(None, release.wait)

            server.call(occupy_default_pool())
            try:
                listed = client.get("/v1/workspaces", timeout=15)
                assert listed.status_code == 200
                assert [w["id"] for w in listed.json()] == ["w1"]
                assert client.get("/v1/workspaces/w1/events", timeout=15).status_code == 200
            finally:
                release.set()
