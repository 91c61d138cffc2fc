"""The embedded store: one SQLite file in WAL mode.

All writes of a process go through one writer thread that groups whatever is pending into one
transaction (group commit), so ingestion does not pay one fsync per request. Reads run on
per-thread connections beside it; WAL lets them proceed while the writer writes. Several
processes may share the file (a `mezzo worker` beside `mezzo serve`): SQLite's file lock
serialises their transactions and `PRAGMA data_version` tells each process that another wrote.
A tail is handed the events this process stores as they commit (`RecentEvents`) and reads the
file only to catch up, or when another process wrote.

Durability: a batch holding a write someone is told about (`durable=True`: a submit, a posted
tool result, a cancel) commits with the configured `synchronous` (FULL: fsync before the
answer). The engine's own writes between those (budget holds, step events, settlements) commit
without an fsync and are fsynced within `sync_delay_s`, or sooner with the next durable batch:
a crash of the process loses none of them, a power loss at most that window, after which a run
redoes its last step.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import sqlite3
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from mezzo.protocol import TERMINAL_EVENT_TYPES, Event, NewEvent
from mezzo.store.base import (
    WAITER_TTL_S,
    CommitResult,
    DeadJob,
    Hold,
    HoldResult,
    Job,
    LeaseLost,
    LedgerState,
    NewJob,
    RateLimit,
    Settlement,
    VersionConflict,
)
from mezzo.store.gcra import gcra_acquire
from mezzo.store.live import LiveHub

T = TypeVar("T")
READ_THREADS = 4
WriteOp = Callable[[sqlite3.Connection], T]

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    workspace TEXT NOT NULL, seq INTEGER NOT NULL, run TEXT, type TEXT NOT NULL,
    ts REAL NOT NULL, data TEXT NOT NULL, PRIMARY KEY (workspace, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_by_run ON events (run, seq);
CREATE TABLE IF NOT EXISTS heads (workspace TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run TEXT PRIMARY KEY, workspace TEXT NOT NULL, version INTEGER NOT NULL,
    active INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS runs_active ON runs (active) WHERE active = 1;
CREATE INDEX IF NOT EXISTS runs_active_by_workspace ON runs (workspace, run) WHERE active = 1;
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, queue TEXT NOT NULL, payload TEXT NOT NULL, priority INTEGER NOT NULL,
    not_before REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, max_attempts INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'ready', worker TEXT, lease_until REAL, token INTEGER NOT NULL
    DEFAULT 0, again INTEGER NOT NULL DEFAULT 0, last_error TEXT, created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_ready ON jobs (queue, state, priority, not_before);
CREATE TABLE IF NOT EXISTS dead_jobs (
    id TEXT PRIMARY KEY, queue TEXT NOT NULL, payload TEXT NOT NULL, attempts INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL, priority INTEGER NOT NULL, last_error TEXT,
    failed_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ledgers (
    workspace TEXT PRIMARY KEY, budget INTEGER NOT NULL, committed INTEGER NOT NULL DEFAULT 0,
    reserved INTEGER NOT NULL DEFAULT 0, alerts TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE IF NOT EXISTS reservations (
    id TEXT PRIMARY KEY, workspace TEXT NOT NULL, granted INTEGER NOT NULL,
    state TEXT NOT NULL, charged INTEGER NOT NULL DEFAULT 0, expires_at REAL
);
CREATE INDEX IF NOT EXISTS reservations_open ON reservations (workspace, expires_at)
    WHERE state = 'open';
CREATE TABLE IF NOT EXISTS budget_waiters (
    workspace TEXT NOT NULL, id TEXT NOT NULL, priority INTEGER NOT NULL, since REAL NOT NULL,
    tokens INTEGER NOT NULL, seen REAL NOT NULL, PRIMARY KEY (workspace, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rate_state (
    key TEXT PRIMARY KEY, state TEXT NOT NULL, expires REAL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS rate_state_expiry ON rate_state (expires);
"""
# A limiter row may go once every time in its state is past (it then acts as no row): files
# written before rows expired learn when theirs do.
RATE_STATE_EXPIRY = """
ALTER TABLE rate_state ADD COLUMN expires REAL;
UPDATE rate_state SET expires = max(
    coalesce(json_extract(state, '$.tat_r'), 0),
    coalesce(json_extract(state, '$.tat_t'), 0),
    coalesce(json_extract(state, '$.blocked_until'), 0)
);
"""
# How often a process's writes sweep the limiter rows that have expired.
RATE_SWEEP_S = 60.0


# Files written before the run index existed: move `run_versions` into `runs`.
MIGRATIONS = """
INSERT OR IGNORE INTO runs (run, workspace, version, active)
    SELECT v.run, e.workspace, v.version,
        NOT EXISTS (SELECT 1 FROM events t WHERE t.run = v.run
                    AND t.type IN ('completed', 'failed', 'cancelled'))
    FROM run_versions v JOIN (SELECT run, MIN(workspace) AS workspace FROM events
                              WHERE run IS NOT NULL GROUP BY run) e ON e.run = v.run;
DROP TABLE run_versions;
"""


def _create_schema(conn: sqlite3.Connection) -> None:
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if "reservations" in tables:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(reservations)")}
        if "expires_at" not in columns:
            conn.execute("ALTER TABLE reservations ADD COLUMN expires_at REAL")
    if "rate_state" in tables:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(rate_state)")}
        if "expires" not in columns:
            conn.executescript(f"BEGIN IMMEDIATE; {RATE_STATE_EXPIRY} COMMIT;")
    conn.executescript(SCHEMA)
    if "run_versions" in tables:
        conn.executescript(f"BEGIN IMMEDIATE; {MIGRATIONS} COMMIT;")


def _connect(path: str, synchronous: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute("PRAGMA foreign_keys=OFF")
    return conn


def _row_to_event(row: sqlite3.Row | tuple[Any, ...]) -> Event:
    workspace, seq, run, type_, ts, data = row
    return Event(seq=seq, workspace=workspace, run=run, type=type_, ts=ts, data=json.loads(data))


def _row_to_job(row: tuple[Any, ...]) -> Job:
    id_, queue_, payload, priority, attempts, max_attempts, token, lease_until, last_error = row
    return Job(
        id=id_,
        queue=queue_,
        payload=json.loads(payload),
        priority=priority,
        attempts=attempts,
        max_attempts=max_attempts,
        token=token,
        lease_until=lease_until,
        last_error=last_error,
    )


class _Writer(threading.Thread):
    """Runs write operations in batches: one transaction for all that are pending.

    A batch commits with the configured `synchronous` when one of its operations is durable,
    else with NORMAL (no fsync); the WAL is fsynced `sync_delay_s` after the first such commit
    unless a durable batch did it first.
    """

    def __init__(
        self, path: str, synchronous: str, sync_delay_s: float, max_batch: int = 512
    ) -> None:
        super().__init__(name="mezzo-sqlite-writer", daemon=True)
        self._path = path
        self._synchronous = synchronous
        self._sync_delay_s = sync_delay_s
        self._max_batch = max_batch
        self._ops: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._mode = ""
        self._unsynced_since: float | None = None
        # Called on a committing loop after its futures are resolved.
        self.on_commit: Callable[[], None] = lambda: None

    def submit(self, op: WriteOp[T], durable: bool) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._ops.put(_Pending(op, future, loop, durable))
        return future

    def stop(self) -> None:
        self._ops.put(None)

    def run(self) -> None:
        conn = _connect(self._path, self._synchronous)
        self._mode = self._synchronous
        try:
            while True:
                first = self._next()
                if first is None:
                    self._sync_wal()
                    return
                batch = [first]
                while len(batch) < self._max_batch:
                    try:
                        item = self._ops.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        self._run_batch(conn, batch)
                        self._sync_wal()
                        return
                    batch.append(item)
                self._run_batch(conn, batch)
        finally:
            conn.close()

    def _next(self) -> _Pending | None:
        """The next operation; fsyncs the WAL when its delay is up while waiting for one."""
        while self._unsynced_since is not None:
            left = self._unsynced_since + self._sync_delay_s - time.monotonic()
            if left <= 0:
                self._sync_wal()
                break
            try:
                return self._ops.get(timeout=left)
            except queue.Empty:
                continue
        return self._ops.get()

    def _sync_wal(self) -> None:
        if self._unsynced_since is None:
            return
        self._unsynced_since = None
        with contextlib.suppress(OSError):
            fd = os.open(self._path + "-wal", os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def _set_mode(self, conn: sqlite3.Connection, durable: bool) -> None:
        mode = self._synchronous if durable or self._sync_delay_s <= 0 else "NORMAL"
        if mode != self._mode:
            conn.execute(f"PRAGMA synchronous={mode}")
            self._mode = mode

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Pending]) -> None:
        outcomes: list[tuple[_Pending, bool, Any]] = []
        durable = any(item.durable for item in batch)
        try:
            self._set_mode(conn, durable)
            conn.execute("BEGIN IMMEDIATE")
            alone = len(batch) == 1  # no savepoint needed: a failure rolls back the batch
            for item in batch:
                if item.future.cancelled():
                    continue  # its caller was cancelled before the write began: skip it
                if not alone:
                    conn.execute("SAVEPOINT op")
                try:
                    result = item.op(conn)
                except BaseException as exc:
                    if alone:
                        raise
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                    outcomes.append((item, False, exc))
                else:
                    if not alone:
                        conn.execute("RELEASE op")
                    outcomes.append((item, True, result))
            conn.execute("COMMIT")
        except BaseException as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            self._resolve([(item, False, exc) for item in batch], committed=False)
            return
        if self._mode == "FULL":
            self._unsynced_since = None  # this commit's fsync covered the earlier ones
        elif self._unsynced_since is None and self._synchronous == "FULL":
            self._unsynced_since = time.monotonic()
        self._resolve(outcomes, committed=True)

    def _resolve(self, outcomes: list[tuple[_Pending, bool, Any]], *, committed: bool) -> None:
        """Hand the outcomes to their event loops: one wake-up per loop and batch."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Pending, bool, Any]]] = {}
        for outcome in outcomes:
            by_loop.setdefault(outcome[0].loop, []).append(outcome)
        for loop, mine in by_loop.items():
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody is waiting
                loop.call_soon_threadsafe(
                    _settle_futures, mine, self.on_commit if committed else None
                )


def _settle_futures(
    outcomes: list[tuple[_Pending, bool, Any]], after: Callable[[], None] | None
) -> None:
    for item, ok, value in outcomes:
        if item.future.done():
            continue
        if ok:
            item.future.set_result(value)
        else:
            item.future.set_exception(value)
    if after is not None:
        after()


class RecentEvents:
    """The newest events this process stored for one workspace, in seq order without gaps,
    and a wake-up for its tails. A gap (another process wrote in between) starts it afresh."""

    def __init__(self, size: int = 32) -> None:
        self.events: deque[Event] = deque(maxlen=size)
        self.changed = asyncio.Event()
        self.tails = 0

    def add(self, events: Sequence[Event]) -> None:
        last = self.events[-1].seq if self.events else None
        if last is not None and events[0].seq != last + 1:
            self.events.clear()
        self.events.extend(events)
        self.changed.set()
        self.changed = asyncio.Event()

    def after(self, cursor: int) -> list[Event] | None:
        """The events after `cursor`; [] when there are none yet; None when some are not
        here (read them from the file)."""
        if not self.events:
            return None
        first, last = self.events[0].seq or 0, self.events[-1].seq or 0
        if cursor >= last:
            return []
        if cursor + 1 < first:
            return None
        return [e for e in self.events if (e.seq or 0) > cursor]


@dataclass(frozen=True, slots=True)
class _Pending:
    op: WriteOp[Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    durable: bool


class SQLiteStore:
    """`Store` on one SQLite file. `synchronous="FULL"` makes every commit durable on power loss."""

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: str = "FULL",
        sync_delay_s: float = 0.1,
        poll_s: float = 0.05,
    ) -> None:
        self.path = str(path)
        self._synchronous = synchronous
        self._sync_delay_s = sync_delay_s
        self._poll_s = poll_s
        self._writer: _Writer | None = None
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._read_pool: ThreadPoolExecutor | None = None
        self._changed = asyncio.Event()  # another process committed something
        self._jobs_changed = asyncio.Event()
        self._recent: dict[str, RecentEvents] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watcher: asyncio.Task[None] | None = None
        self.live_hub = LiveHub()
        self.rate_sweep_s = RATE_SWEEP_S
        self._last_rate_sweep = 0.0  # read and written by the writer thread only

    # ---- lifecycle

    async def open(self) -> None:
        if self._writer is not None:
            return
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._loop = asyncio.get_running_loop()

        def init() -> None:
            conn = _connect(self.path, self._synchronous)
            try:
                _create_schema(conn)
            finally:
                conn.close()

        await asyncio.to_thread(init)
        self._writer = _Writer(self.path, self._synchronous, self._sync_delay_s)
        self._writer.start()
        self._watcher = asyncio.create_task(self._watch_other_processes())

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        if self._writer is not None:
            self._writer.stop()
            await asyncio.to_thread(self._writer.join)
            self._writer = None
        if self._read_pool is not None:
            self._read_pool.shutdown(wait=False)
            self._read_pool = None
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
        self._local = threading.local()

    async def __aenter__(self) -> SQLiteStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---- plumbing

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self.path, self._synchronous)
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        # Reads have threads of their own: asyncio's default pool also runs file indexing and
        # tools, and a read (an API-key lookup) must not queue behind them.
        if self._read_pool is None:
            self._read_pool = ThreadPoolExecutor(READ_THREADS, "mezzo-sqlite-read")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._read_pool, lambda: fn(self._reader()))

    async def _write(self, op: WriteOp[T], durable: bool = True) -> T:
        if self._writer is None:
            raise RuntimeError("store is not open")
        return await self._writer.submit(op, durable)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _notify_jobs(self) -> None:
        self._jobs_changed.set()
        self._jobs_changed = asyncio.Event()

    async def _watch_other_processes(self) -> None:
        """Wake waiters when another process commits (PRAGMA data_version changes)."""
        conn = _connect(self.path, self._synchronous)
        try:
            last = conn.execute("PRAGMA data_version").fetchone()[0]
            while True:
                await asyncio.sleep(self._poll_s)
                version = conn.execute("PRAGMA data_version").fetchone()[0]
                if version != last:
                    last = version
                    self._notify()
                    self._notify_jobs()
        finally:
            conn.close()

    async def wait_for_change(self, within: float) -> None:
        """Return when a job may have become ready (this process enqueued or gave one back, or
        another process committed anything), or after `within` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._jobs_changed.wait(), within)

    # ---- event log

    async def append(
        self,
        workspace: str,
        run: str | None,
        events: Sequence[NewEvent],
        expected_version: int | None,
        *,
        enqueue: NewJob | None = None,
        durable: bool = True,
    ) -> list[Event]:
        rows = _encode(events)

        def op(conn: sqlite3.Connection) -> list[Event]:
            stored = _append_rows(conn, workspace, run, events, rows, expected_version)
            if enqueue is not None:
                _enqueue(conn, enqueue, time.time())
            return stored

        stored = await self._write(op, durable)
        self._stored(workspace, stored)
        if enqueue is not None:
            self._notify_jobs()
        return stored

    async def read(
        self,
        workspace: str,
        after_seq: int = 0,
        types: Sequence[str] | None = None,
        limit: int = 1000,
        run: str | None = None,
    ) -> list[Event]:
        sql = "SELECT workspace, seq, run, type, ts, data FROM events WHERE "
        params: list[Any] = []
        if run is not None:
            sql += "run = ? AND workspace = ? AND seq > ?"
            params += [run, workspace, after_seq]
        else:
            sql += "workspace = ? AND seq > ?"
            params += [workspace, after_seq]
        if types:
            sql += f" AND type IN ({','.join('?' * len(types))})"
            params += list(types)
        sql += " ORDER BY seq LIMIT ?"
        params.append(limit)
        rows = await self._read(lambda c: c.execute(sql, params).fetchall())
        return [_row_to_event(row) for row in rows]

    async def tail(
        self,
        workspace: str,
        after_seq: int = 0,
        types: Sequence[str] | None = None,
        run: str | None = None,
    ) -> AsyncIterator[Event]:
        cursor = after_seq
        recent = self._recent.get(workspace)
        if recent is None:
            recent = self._recent[workspace] = RecentEvents()
        recent.tails += 1
        try:
            async for event in self._tail(recent, workspace, cursor, types, run):
                yield event
        finally:
            recent.tails -= 1
            if recent.tails == 0 and self._recent.get(workspace) is recent:
                del self._recent[workspace]

    async def _tail(
        self,
        recent: RecentEvents,
        workspace: str,
        cursor: int,
        types: Sequence[str] | None,
        run: str | None,
    ) -> AsyncIterator[Event]:
        batch: list[Event] | None = None
        while True:
            if batch is None:  # catch up from the file
                batch = await self.read(workspace, cursor, None, 500, run)
            for event in batch:
                assert event.seq is not None
                cursor = event.seq
                if (not types or event.type in types) and (run is None or event.run == run):
                    yield event
            if len(batch) >= 500:
                batch = None
                continue
            ours, theirs = recent.changed, self._changed
            batch = recent.after(cursor)
            if batch:
                continue
            waits = {asyncio.ensure_future(ours.wait()), asyncio.ensure_future(theirs.wait())}
            try:
                await asyncio.wait(waits, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waits:
                    waiter.cancel()
            batch = None if theirs.is_set() or not ours.is_set() else recent.after(cursor)

    def _stored(self, workspace: str, events: Sequence[Event]) -> None:
        """Hand events this process stored to its tails of the workspace, if it has any."""
        if events:
            recent = self._recent.get(workspace)
            if recent is not None:
                recent.add(events)

    async def trim(self, workspace: str, keep: int = 10_000) -> int:
        """Drop events older than the newest `keep`, but none at or after the first event of a
        run that has not ended (completed, failed, cancelled). Returns how many went."""

        def op(conn: sqlite3.Connection) -> int:
            head_row = conn.execute(
                "SELECT seq FROM heads WHERE workspace = ?", (workspace,)
            ).fetchone()
            cutoff = (head_row[0] if head_row else 0) - max(keep, 0)
            pinned = conn.execute(
                "SELECT MIN(e.seq) FROM runs r JOIN events e ON e.run = r.run "
                "WHERE r.workspace = ? AND r.active = 1 AND e.workspace = ?",
                (workspace, workspace),
            ).fetchone()[0]
            if pinned is not None:
                cutoff = min(cutoff, pinned - 1)
            if cutoff <= 0:
                return 0
            return conn.execute(
                "DELETE FROM events WHERE workspace = ? AND seq <= ?", (workspace, cutoff)
            ).rowcount

        return await self._write(op)

    async def head(self, workspace: str) -> int:
        row = await self._read(
            lambda c: c.execute(
                "SELECT seq FROM heads WHERE workspace = ?", (workspace,)
            ).fetchone()
        )
        return int(row[0]) if row else 0

    async def run_version(self, run: str) -> int:
        row = await self._read(
            lambda c: c.execute("SELECT version FROM runs WHERE run = ?", (run,)).fetchone()
        )
        return int(row[0]) if row else 0

    async def run_workspace(self, run: str) -> str | None:
        row = await self._read(
            lambda c: c.execute("SELECT workspace FROM runs WHERE run = ?", (run,)).fetchone()
        )
        return str(row[0]) if row else None

    async def active_runs(
        self, limit: int = 1000, workspace: str | None = None
    ) -> list[tuple[str, str]]:
        sql = "SELECT run, workspace FROM runs WHERE active = 1"
        params: tuple[Any, ...] = (limit,)
        if workspace is not None:
            sql += " AND workspace = ?"
            params = (workspace, limit)
        rows = await self._read(
            lambda c: c.execute(f"{sql} ORDER BY run LIMIT ?", params).fetchall()
        )
        return [(str(run), str(key)) for run, key in rows]

    # ---- live events (in-process only on SQLite: one process serves the embedded setup)

    async def publish_live(self, event: Event) -> None:
        self.live_hub.publish(event)

    def live(self, workspace: str) -> AsyncIterator[Event]:
        return self.live_hub.subscribe(workspace)

    # ---- queue

    async def enqueue(
        self,
        queue: str,
        job_id: str,
        payload: dict[str, Any],
        *,
        priority: int = 0,
        not_before: float | None = None,
        max_attempts: int = 5,
    ) -> bool:
        job = NewJob(queue, job_id, payload, priority, max_attempts)
        when = not_before if not_before is not None else time.time()
        created = await self._write(lambda conn: _enqueue(conn, job, when))
        self._notify_jobs()
        return created

    async def lease(self, queue: str, worker: str, n: int, lease_s: float) -> list[Job]:
        def op(conn: sqlite3.Connection) -> list[Job]:
            now = time.time()
            self._dead_letter_lapsed(conn, queue, now)
            ids = [
                row[0]
                for row in conn.execute(
                    "SELECT id FROM jobs WHERE queue = ? AND ((state = 'ready' AND not_before <= ?) "
                    "OR (state = 'leased' AND lease_until < ?)) "
                    "ORDER BY priority DESC, not_before LIMIT ?",
                    (queue, now, now, n),
                )
            ]
            jobs = []
            for job_id in ids:
                row = conn.execute(
                    "UPDATE jobs SET state = 'leased', worker = ?, lease_until = ?, "
                    "token = token + 1, attempts = attempts + 1, again = 0 WHERE id = ? "
                    "RETURNING id, queue, payload, priority, attempts, max_attempts, token, "
                    "lease_until, last_error",
                    (worker, now + lease_s, job_id),
                ).fetchone()
                jobs.append(_row_to_job(row))
            return jobs

        return await self._write(op, durable=False)

    @staticmethod
    def _dead_letter_lapsed(conn: sqlite3.Connection, queue: str, now: float) -> None:
        rows = conn.execute(
            "SELECT id FROM jobs WHERE queue = ? AND state = 'leased' AND lease_until < ? "
            "AND attempts >= max_attempts",
            (queue, now),
        ).fetchall()
        for (job_id,) in rows:
            SQLiteStore._move_to_dead(conn, job_id, "lease lapsed: the worker died or hung", now)

    @staticmethod
    def _move_to_dead(conn: sqlite3.Connection, job_id: str, error: str, now: float) -> None:
        conn.execute(
            "INSERT OR REPLACE INTO dead_jobs (id, queue, payload, attempts, max_attempts, "
            "priority, last_error, failed_at) SELECT id, queue, payload, attempts, max_attempts, "
            "priority, ?, ? FROM jobs WHERE id = ?",
            (error, now, job_id),
        )
        conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    @staticmethod
    def _check_lease(conn: sqlite3.Connection, job: Job) -> tuple[int]:
        row = conn.execute(
            "SELECT again FROM jobs WHERE id = ? AND state = 'leased' AND token = ?",
            (job.id, job.token),
        ).fetchone()
        if row is None:
            raise LeaseLost(f"job {job.id}: lease {job.token} is no longer held")
        return row

    async def extend(self, job: Job, lease_s: float) -> Job:
        def op(conn: sqlite3.Connection) -> Job:
            self._check_lease(conn, job)
            until = time.time() + lease_s
            conn.execute("UPDATE jobs SET lease_until = ? WHERE id = ?", (until, job.id))
            return Job(**{**_job_fields(job), "lease_until": until})

        return await self._write(op, durable=False)

    async def ack(self, job: Job) -> None:
        def op(conn: sqlite3.Connection) -> bool:
            (again,) = self._check_lease(conn, job)
            if again:
                conn.execute(
                    "UPDATE jobs SET state = 'ready', worker = NULL, lease_until = NULL, "
                    "attempts = 0, again = 0, not_before = ? WHERE id = ?",
                    (time.time(), job.id),
                )
            else:
                conn.execute("DELETE FROM jobs WHERE id = ?", (job.id,))
            return bool(again)

        if await self._write(op, durable=False):
            self._notify_jobs()

    async def retry(self, job: Job, delay_s: float, error: str) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            self._check_lease(conn, job)
            now = time.time()
            if job.attempts >= job.max_attempts:
                self._move_to_dead(conn, job.id, error, now)
                return False
            conn.execute(
                "UPDATE jobs SET state = 'ready', worker = NULL, lease_until = NULL, "
                "not_before = ?, last_error = ? WHERE id = ?",
                (now + delay_s, error, job.id),
            )
            return True

        again = await self._write(op, durable=False)
        self._notify_jobs()
        return again

    async def release(self, job: Job, delay_s: float = 0.0) -> None:
        def op(conn: sqlite3.Connection) -> None:
            self._check_lease(conn, job)
            conn.execute(
                "UPDATE jobs SET state = 'ready', worker = NULL, lease_until = NULL, "
                "attempts = MAX(attempts - 1, 0), not_before = ? WHERE id = ?",
                (time.time() + delay_s, job.id),
            )

        await self._write(op, durable=False)
        self._notify_jobs()

    async def queue_depth(self, queue: str) -> dict[int, int]:
        rows = await self._read(
            lambda c: c.execute(
                "SELECT priority, COUNT(*) FROM jobs WHERE queue = ? GROUP BY priority", (queue,)
            ).fetchall()
        )
        return {int(priority): int(count) for priority, count in rows}

    async def queue_oldest(self, queue: str) -> dict[int, float]:
        now = time.time()
        rows = await self._read(
            lambda c: c.execute(
                "SELECT priority, MIN(not_before) FROM jobs WHERE queue = ? AND state = 'ready' "
                "AND not_before <= ? GROUP BY priority",
                (queue, now),
            ).fetchall()
        )
        return {int(priority): float(since) for priority, since in rows}

    async def dead_letters(self, queue: str, limit: int = 100) -> list[DeadJob]:
        rows = await self._read(
            lambda c: c.execute(
                "SELECT id, queue, payload, attempts, last_error, failed_at FROM dead_jobs "
                "WHERE queue = ? ORDER BY failed_at LIMIT ?",
                (queue, limit),
            ).fetchall()
        )
        return [
            DeadJob(
                id=r[0],
                queue=r[1],
                payload=json.loads(r[2]),
                attempts=r[3],
                last_error=r[4],
                failed_at=r[5],
            )
            for r in rows
        ]

    async def requeue_dead(self, queue: str, job_id: str) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "SELECT payload, max_attempts, priority FROM dead_jobs WHERE id = ? AND queue = ?",
                (job_id, queue),
            ).fetchone()
            if row is None:
                return False
            conn.execute("DELETE FROM dead_jobs WHERE id = ?", (job_id,))
            conn.execute(
                "INSERT OR IGNORE INTO jobs (id, queue, payload, priority, not_before, "
                "max_attempts, created) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (job_id, queue, row[0], row[2], time.time(), row[1], time.time()),
            )
            return True

        requeued = await self._write(op)
        self._notify_jobs()
        return requeued

    # ---- key-value

    async def kv_get(self, key: str) -> dict[str, Any] | None:
        row = await self._read(
            lambda c: c.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        )
        return json.loads(row[0]) if row else None

    async def kv_put(self, key: str, value: dict[str, Any]) -> None:
        body = json.dumps(value, separators=(",", ":"))
        await self._write(
            lambda c: c.execute(
                "INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, body),
            )
        )

    async def kv_put_if_absent(self, key: str, value: dict[str, Any]) -> bool:
        body = json.dumps(value, separators=(",", ":"))
        return await self._write(
            lambda c: (
                c.execute(
                    "INSERT OR IGNORE INTO kv (key, value) VALUES (?, ?)", (key, body)
                ).rowcount
                == 1
            )
        )

    async def kv_delete(self, key: str) -> bool:
        return await self._write(
            lambda c: c.execute("DELETE FROM kv WHERE key = ?", (key,)).rowcount == 1
        )

    async def kv_scan(self, prefix: str, limit: int = 1000) -> list[tuple[str, dict[str, Any]]]:
        upper = prefix + "\U0010ffff"
        rows = await self._read(
            lambda c: c.execute(
                "SELECT key, value FROM kv WHERE key >= ? AND key < ? ORDER BY key LIMIT ?",
                (prefix, upper, limit),
            ).fetchall()
        )
        return [(key, json.loads(value)) for key, value in rows]

    # ---- token ledger

    async def ledger_init(self, workspace: str, budget: int) -> None:
        await self._write(
            lambda c: c.execute(
                "INSERT OR IGNORE INTO ledgers (workspace, budget) VALUES (?, ?)",
                (workspace, budget),
            )
        )

    @staticmethod
    def _ledger(conn: sqlite3.Connection, workspace: str) -> LedgerState:
        row = conn.execute(
            "SELECT budget, committed, reserved, alerts FROM ledgers WHERE workspace = ?",
            (workspace,),
        ).fetchone()
        if row is None:
            raise KeyError(f"no ledger for workspace {workspace}")
        return LedgerState(
            budget=row[0], committed=row[1], reserved=row[2], alerts_fired=json.loads(row[3])
        )

    async def ledger_get(self, workspace: str) -> LedgerState:
        return await self._read(lambda c: self._ledger(c, workspace))

    async def ledger_add(self, workspace: str, tokens: int) -> LedgerState:
        def op(conn: sqlite3.Connection) -> LedgerState:
            conn.execute(
                "UPDATE ledgers SET budget = budget + ? WHERE workspace = ?", (tokens, workspace)
            )
            state = self._ledger(conn, workspace)
            # Thresholds now below the used share may fire again later.
            fired = [t for t in state.alerts_fired if state.committed >= t * state.budget]
            conn.execute(
                "UPDATE ledgers SET alerts = ? WHERE workspace = ?", (json.dumps(fired), workspace)
            )
            state.alerts_fired = fired
            return state

        return await self._write(op)

    async def hold(
        self,
        workspace: str,
        hold: Hold,
        *,
        run: str | None = None,
        events: Sequence[NewEvent] = (),
        expected_version: int | None = None,
    ) -> HoldResult:
        rows = _encode(events)

        def op(conn: sqlite3.Connection) -> HoldResult:
            if run is not None and expected_version is not None:
                _check_version(conn, run, expected_version)
            granted = _take_hold(conn, workspace, hold, time.time())
            stored = []
            if granted and rows:
                stored = _append_rows(conn, workspace, run, events, rows, expected_version)
            return HoldResult(granted, self._ledger(conn, workspace), stored)

        result = await self._write(op, durable=False)
        self._stored(workspace, result.events)
        return result

    async def settle(
        self,
        workspace: str,
        hold_id: str,
        actual: int,
        thresholds: Sequence[float],
        *,
        run: str | None = None,
        events: Sequence[NewEvent] = (),
        expected_version: int | None = None,
    ) -> Settlement:
        rows = _encode(events)

        def op(conn: sqlite3.Connection) -> Settlement:
            commit = self._commit(conn, workspace, hold_id, actual, thresholds)
            if not rows:
                return Settlement(commit)
            conn.execute("SAVEPOINT events")
            try:
                stored = _append_rows(conn, workspace, run, events, rows, expected_version)
            except VersionConflict:
                conn.execute("ROLLBACK TO events")
                conn.execute("RELEASE events")
                return Settlement(commit, conflict=True)
            conn.execute("RELEASE events")
            return Settlement(commit, stored)

        settlement = await self._write(op, durable=False)
        self._stored(workspace, settlement.events)
        return settlement

    def _commit(
        self,
        conn: sqlite3.Connection,
        workspace: str,
        hold_id: str,
        actual: int,
        thresholds: Sequence[float],
    ) -> CommitResult:
        state = self._ledger(conn, workspace)
        row = conn.execute(
            "SELECT granted, state, charged FROM reservations WHERE id = ?", (hold_id,)
        ).fetchone()
        if row is not None and row[1] == "committed":
            return CommitResult(state.committed, state.budget, row[2], True, ())
        granted = row[0] if row is not None and row[1] == "open" else 0
        headroom = state.budget - state.committed - (state.reserved - granted)
        charged = max(0, min(actual, headroom))
        committed = state.committed + charged
        crossed = tuple(
            t
            for t in sorted(thresholds)
            if t not in state.alerts_fired and committed >= t * state.budget
        )
        conn.execute(
            "UPDATE ledgers SET committed = ?, reserved = reserved - ?, alerts = ? "
            "WHERE workspace = ?",
            (committed, granted, json.dumps(sorted([*state.alerts_fired, *crossed])), workspace),
        )
        conn.execute(
            "INSERT OR REPLACE INTO reservations (id, workspace, granted, state, charged) "
            "VALUES (?, ?, ?, 'committed', ?)",
            (hold_id, workspace, granted, charged),
        )
        return CommitResult(committed, state.budget, charged, False, crossed)

    async def release_reservation(self, workspace: str, hold_id: str) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "DELETE FROM budget_waiters WHERE workspace = ? AND id = ?", (workspace, hold_id)
            )
            row = conn.execute(
                "SELECT granted FROM reservations WHERE id = ? AND state = 'open'", (hold_id,)
            ).fetchone()
            if row is None:
                return
            conn.execute("UPDATE reservations SET state = 'released' WHERE id = ?", (hold_id,))
            conn.execute(
                "UPDATE ledgers SET reserved = reserved - ? WHERE workspace = ?",
                (row[0], workspace),
            )

        await self._write(op, durable=False)

    # ---- rate limiter

    async def acquire(
        self,
        key: str,
        requests: int,
        tokens: int,
        limits: tuple[RateLimit | None, RateLimit | None],
    ) -> float:
        if limits == (None, None) and requests >= 0 and tokens >= 0:
            # Nothing to take: only a retry-after block can make the caller wait. A read.
            row = await self._read(
                lambda c: c.execute("SELECT state FROM rate_state WHERE key = ?", (key,)).fetchone()
            )
            blocked = float(json.loads(row[0]).get("blocked_until", 0.0)) if row else 0.0
            return max(0.0, blocked - time.time())

        def op(conn: sqlite3.Connection) -> float:
            now = time.time()
            row = conn.execute("SELECT state FROM rate_state WHERE key = ?", (key,)).fetchone()
            state = json.loads(row[0]) if row else {}
            wait, new_state = gcra_acquire(state, now, requests, tokens, limits)
            if new_state != state:
                _put_rate_state(conn, key, new_state)
            self._sweep_rate_state(conn, now)
            return wait

        return await self._write(op, durable=False)

    async def block_until(self, key: str, until: float) -> None:
        def op(conn: sqlite3.Connection) -> None:
            row = conn.execute("SELECT state FROM rate_state WHERE key = ?", (key,)).fetchone()
            state = json.loads(row[0]) if row else {}
            state["blocked_until"] = max(float(state.get("blocked_until", 0.0)), until)
            _put_rate_state(conn, key, state)

        await self._write(op, durable=False)

    def _sweep_rate_state(self, conn: sqlite3.Connection, now: float) -> None:
        """Delete the limiter rows whose every time is past, at most once per `rate_sweep_s`
        (an indexed delete, inside the writer's transaction)."""
        if now < self._last_rate_sweep + self.rate_sweep_s:
            return
        self._last_rate_sweep = now
        conn.execute("DELETE FROM rate_state WHERE expires < ?", (now,))


def _put_rate_state(conn: sqlite3.Connection, key: str, state: dict[str, Any]) -> None:
    expires = max(
        (float(state.get(name, 0.0)) for name in ("tat_r", "tat_t", "blocked_until")),
        default=0.0,
    )
    conn.execute(
        "INSERT INTO rate_state (key, state, expires) VALUES (?, ?, ?) "
        "ON CONFLICT(key) DO UPDATE SET state = excluded.state, expires = excluded.expires",
        (key, json.dumps(state), expires),
    )


def _job_fields(job: Job) -> dict[str, Any]:
    return {name: getattr(job, name) for name in Job.__slots__}


def _encode(events: Sequence[NewEvent]) -> list[tuple[str, str]]:
    return [(e.type, json.dumps(e.data, separators=(",", ":"))) for e in events]


def _check_version(conn: sqlite3.Connection, run: str, expected: int) -> int:
    found = conn.execute("SELECT version FROM runs WHERE run = ?", (run,)).fetchone()
    version = int(found[0]) if found else 0
    if version != expected:
        raise VersionConflict(run, expected, version)
    return version


def _append_rows(
    conn: sqlite3.Connection,
    workspace: str,
    run: str | None,
    events: Sequence[NewEvent],
    rows: Sequence[tuple[str, str]],
    expected_version: int | None,
) -> list[Event]:
    """Append events (`rows`: their encoded form) inside the caller's transaction; raises
    VersionConflict. The stored events carry the callers' data, not a decoded copy."""
    now = time.time()
    n = len(rows)
    if run is not None:
        _advance_run(conn, workspace, run, rows, expected_version)
    (head,) = conn.execute(
        "INSERT INTO heads (workspace, seq) VALUES (?, ?) "
        "ON CONFLICT(workspace) DO UPDATE SET seq = seq + excluded.seq RETURNING seq",
        (workspace, n),
    ).fetchone()
    stored = [
        (workspace, head - n + offset, run, type_, now, data)
        for offset, (type_, data) in enumerate(rows, start=1)
    ]
    conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)", stored)
    return [
        Event(seq=seq, workspace=workspace, run=run, type=event.type, ts=now, data=event.data)
        for (_, seq, *_rest), event in zip(stored, events, strict=True)
    ]


def _advance_run(
    conn: sqlite3.Connection,
    workspace: str,
    run: str,
    rows: Sequence[tuple[str, str]],
    expected_version: int | None,
) -> None:
    """Count `rows` into the run's version (checked against `expected_version`) and whether
    it is still active; one statement when the run is where the caller expects it."""
    ended = any(type_ in TERMINAL_EVENT_TYPES for type_, _ in rows)
    active = 0 if ended else 1
    if expected_version == 0:
        inserted = conn.execute(
            "INSERT INTO runs (run, workspace, version, active) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(run) DO NOTHING",
            (run, workspace, len(rows), active),
        ).rowcount
        if inserted:
            return
    elif expected_version is not None:
        updated = conn.execute(
            "UPDATE runs SET version = version + ?, active = active AND ? "
            "WHERE run = ? AND version = ? AND workspace = ?",
            (len(rows), active, run, expected_version, workspace),
        ).rowcount
        if updated:
            return
    found = conn.execute("SELECT version, workspace FROM runs WHERE run = ?", (run,)).fetchone()
    version = int(found[0]) if found else 0
    if expected_version is not None and version != expected_version:
        raise VersionConflict(run, expected_version, version)
    if found is not None and found[1] != workspace:
        raise ValueError(f"run {run} belongs to another workspace")
    conn.execute(
        "INSERT INTO runs (run, workspace, version, active) VALUES (?, ?, ?, ?) "
        "ON CONFLICT(run) DO UPDATE SET version = excluded.version, "
        "active = active AND excluded.active",
        (run, workspace, version + len(rows), active),
    )


def _enqueue(conn: sqlite3.Connection, job: NewJob, when: float) -> bool:
    body = json.dumps(job.payload, separators=(",", ":"))
    if conn.execute(
        "INSERT INTO jobs (id, queue, payload, priority, not_before, max_attempts, created) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO NOTHING",
        (job.id, job.queue, body, job.priority, when, job.max_attempts, time.time()),
    ).rowcount:
        return True
    row = conn.execute("SELECT state FROM jobs WHERE id = ?", (job.id,)).fetchone()
    if row[0] == "leased":
        conn.execute(
            "UPDATE jobs SET again = 1, payload = ?, priority = MAX(priority, ?) WHERE id = ?",
            (body, job.priority, job.id),
        )
    else:
        conn.execute(
            "UPDATE jobs SET payload = ?, priority = MAX(priority, ?), "
            "not_before = MIN(not_before, ?) WHERE id = ?",
            (body, job.priority, when, job.id),
        )
    return False


def _take_hold(conn: sqlite3.Connection, workspace: str, hold: Hold, now: float) -> int:
    """The ledger side of `Store.hold`: the tokens granted, 0 when not (see `Hold`)."""
    lapsed = conn.execute(
        "SELECT id, granted FROM reservations WHERE workspace = ? AND state = 'open' "
        "AND expires_at < ?",
        (workspace, now),
    ).fetchall()
    for lapsed_id, granted in lapsed:
        conn.execute("UPDATE reservations SET state = 'lapsed' WHERE id = ?", (lapsed_id,))
        conn.execute(
            "UPDATE ledgers SET reserved = reserved - ? WHERE workspace = ?", (granted, workspace)
        )
    held = conn.execute(
        "SELECT granted FROM reservations WHERE id = ? AND state = 'open'", (hold.id,)
    ).fetchone()
    if held is not None:
        return int(held[0])
    row = conn.execute(
        "SELECT budget, committed, reserved FROM ledgers WHERE workspace = ?", (workspace,)
    ).fetchone()
    if row is None:
        raise KeyError(f"no ledger for workspace {workspace}")
    budget, committed, reserved = row
    unspent = budget - committed
    mine = (workspace, hold.id)
    if unspent < hold.minimum or hold.tokens <= 0:
        conn.execute("DELETE FROM budget_waiters WHERE workspace = ? AND id = ?", mine)
        return 0
    if hold.tokens > unspent:
        return 0  # the caller asked for more than is left: it asks again for less
    conn.execute(
        "DELETE FROM budget_waiters WHERE workspace = ? AND seen < ?",
        (workspace, now - WAITER_TTL_S),
    )
    waiting = conn.execute(
        "SELECT since FROM budget_waiters WHERE workspace = ? AND id = ?", mine
    ).fetchone()
    since = float(waiting[0]) if waiting else now
    (ahead,) = conn.execute(
        "SELECT COALESCE(SUM(tokens), 0) FROM budget_waiters WHERE workspace = ? AND id != ? "
        "AND (priority > ? OR (priority = ? AND since < ?))",
        (workspace, hold.id, hold.priority, hold.priority, since),
    ).fetchone()
    if unspent - reserved - ahead < hold.tokens:
        conn.execute(
            "INSERT INTO budget_waiters (workspace, id, priority, since, tokens, seen) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(workspace, id) DO UPDATE SET "
            "priority = excluded.priority, tokens = excluded.tokens, seen = excluded.seen",
            (workspace, hold.id, hold.priority, since, hold.tokens, now),
        )
        return 0
    if waiting:
        conn.execute("DELETE FROM budget_waiters WHERE workspace = ? AND id = ?", mine)
    conn.execute(
        "INSERT OR REPLACE INTO reservations (id, workspace, granted, state, charged, expires_at) "
        "VALUES (?, ?, ?, 'open', 0, ?)",
        (hold.id, workspace, hold.tokens, now + hold.ttl_s),
    )
    conn.execute(
        "UPDATE ledgers SET reserved = reserved + ? WHERE workspace = ?", (hold.tokens, workspace)
    )
    return hold.tokens
