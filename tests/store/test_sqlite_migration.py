"""A store file written before the run index and hold expiry existed opens and keeps working."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

from mezzo.protocol import NewEvent
from mezzo.store.base import Hold, RateLimit
from mezzo.store.sqlite import SQLiteStore

OLD_SCHEMA = """
CREATE TABLE events (
    workspace TEXT NOT NULL, seq INTEGER NOT NULL, run TEXT, type TEXT NOT NULL,
    ts REAL NOT NULL, data TEXT NOT NULL, PRIMARY KEY (workspace, seq)
) WITHOUT ROWID;
CREATE TABLE heads (workspace TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE run_versions (run TEXT PRIMARY KEY, version INTEGER NOT NULL);
CREATE TABLE ledgers (
    workspace TEXT PRIMARY KEY, budget INTEGER NOT NULL, committed INTEGER NOT NULL DEFAULT 0,
    reserved INTEGER NOT NULL DEFAULT 0, alerts TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE reservations (
    id TEXT PRIMARY KEY, workspace TEXT NOT NULL, granted INTEGER NOT NULL,
    state TEXT NOT NULL, charged INTEGER NOT NULL DEFAULT 0
);
"""


def old_file(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(OLD_SCHEMA)
    rows = [
        ("ws", 1, "done", "run_queued"),
        ("ws", 2, "open", "run_queued"),
        ("ws", 3, "done", "completed"),
    ]
    conn.executemany(
        "INSERT INTO events VALUES (?, ?, ?, ?, 0, ?)", [(*r, json.dumps({})) for r in rows]
    )
    conn.execute("INSERT INTO heads VALUES ('ws', 3)")
    conn.executemany("INSERT INTO run_versions VALUES (?, ?)", [("done", 2), ("open", 1)])
    conn.execute("INSERT INTO ledgers VALUES ('ws', 1000, 100, 50, '[]')")
    conn.execute("INSERT INTO reservations VALUES ('open:1', 'ws', 50, 'open', 0)")
    conn.commit()
    conn.close()


async def test_an_old_file_gets_the_run_index_and_its_holds_keep_settling(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.sqlite3"
    old_file(path)
    async with SQLiteStore(path) as store:
        assert await store.run_workspace("done") == "ws"
        assert await store.active_runs() == [("open", "ws")]
        assert await store.run_version("open") == 1
        stored = await store.append("ws", "open", [NewEvent(type="run_started")], 1)
        assert stored[0].seq == 4
        settled = await store.settle("ws", "open:1", 30, [])
        assert settled.commit.charged == 30
        ledger = await store.ledger_get("ws")
        assert (ledger.committed, ledger.reserved) == (130, 0)
        assert (await store.hold("ws", Hold("next", 870, 1))).granted == 870


def rate_rows(path: Path) -> dict[str, float | None]:
    with sqlite3.connect(path) as conn:
        return dict(conn.execute("SELECT key, expires FROM rate_state").fetchall())


async def test_limiter_rows_expire_and_old_rows_learn_when(tmp_path: Path) -> None:
    """A limiter row goes once every time in it is past (it acts as no row then), so keys seen
    once (made-up API keys, one-off client addresses) do not pile up; rows written before this
    get their expiry when the file opens."""
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE rate_state (key TEXT PRIMARY KEY, state TEXT NOT NULL) WITHOUT ROWID"
        )
        conn.execute("INSERT INTO rate_state VALUES ('api:old', ?)", (json.dumps({"tat_r": 5.0}),))
    store = SQLiteStore(path)
    await store.open()
    try:
        assert rate_rows(path) == {"api:old": 5.0}
        store.rate_sweep_s = 3600.0
        fast = (RateLimit(per_minute=60_000, burst=1), None)  # a request holds 1 ms
        for i in range(300):
            assert await store.acquire(f"api:made-up-{i}", 1, 0, fast) == 0.0
        rows = rate_rows(path)  # the first write swept the old row (its time is long past)
        assert len(rows) == 300 and "api:old" not in rows
        await asyncio.sleep(0.05)
        store.rate_sweep_s = 0.0  # sweep at the next write
        await store.acquire("api:now", 1, 0, fast)
        assert set(rate_rows(path)) == {"api:now"}
        # A row still in force is kept, and still limits.
        slow = (RateLimit(per_minute=1, burst=1), None)
        assert await store.acquire("api:slow", 1, 0, slow) == 0.0
        await store.acquire("api:other", 1, 0, fast)
        assert "api:slow" in rate_rows(path)
        assert await store.acquire("api:slow", 1, 0, slow) > 0
    finally:
        await store.close()
