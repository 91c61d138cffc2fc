"""A caller cancelled while its write waits (a client hanging up mid-request, a shutdown)
must not stop the SQLite store's writer: later writes still commit."""

from __future__ import annotations

import asyncio
from pathlib import Path

from mezzo.store.sqlite import SQLiteStore


async def test_writes_after_cancelled_writes_still_commit(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.sqlite3")
    await store.open()
    try:
        for i in range(200):
            task = asyncio.create_task(store.kv_put(f"k{i}", {"v": i}))
            await asyncio.sleep(0)
            task.cancel()
        await asyncio.wait_for(store.kv_put("after", {"ok": 1}), 10)
        assert await store.kv_get("after") == {"ok": 1}
    finally:
        await store.close()
