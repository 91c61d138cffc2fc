"""The scale-out store: any number of API nodes and workers share one Redis (or Cluster).

- Event log: one Stream per workspace, entry id `<seq>-0`; a Lua script checks the run's
  version and assigns the next gap-free seqs atomically. Tails block in `XREAD` (`redis_feed`).
- Queue: sorted sets and one hash of jobs per queue, every operation one Lua script. Streams
  with consumer groups were the other choice; they have no priorities, no delayed entries, no
  "unique by id", so those would sit beside the stream anyway, and a consumer group's pending
  list would be one more copy of the lease state to keep in step.
- Token ledger and rate limiter: Lua scripts that mirror the SQLite store's transactions.
- Keys are hash-tagged: `{w:<workspace>}` for a workspace's log, ledger and live channel,
  `{q:<queue>[:<partition>]}` for a queue partition (`redis_queue`), `{rl:<key>}` for a rate
  limit, `{kv}` for the key-value space, so every script touches one Cluster slot.
- One server or a Cluster (`redis+cluster://`), the same code: `redis_clients` holds the
  connections, `redis_target` reads the URL.

Times that decide anything (leases, not-before, rate limits, event `ts`) are read from the
Redis server's clock inside the scripts, so the nodes' clocks need not agree.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, NoReturn

import redis.exceptions as rex

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
    StoreUnavailable,
    VersionConflict,
)
from mezzo.store.redis_clients import RedisClients, make_clients
from mezzo.store.redis_feed import Feed, Feeds, LiveRelay, Wakeups, parse_entry, shielded
from mezzo.store.redis_queue import (
    CLUSTER_PARTITIONS,
    MAX_PRIORITY,
    SINGLE_PARTITIONS,
    RedisQueues,
    agreed_partitions,
)
from mezzo.store.redis_scripts import Scripts, execute_pipeline, pipelined, register_scripts
from mezzo.store.redis_server import RedisConfigError, server_version, setup_refused
from mezzo.store.redis_target import describe_url, parse_target

__all__ = ["MAX_PRIORITY", "RedisConfigError", "RedisStore", "describe_url"]

PAGE = 500
_UNAVAILABLE = (rex.ConnectionError, rex.TimeoutError, rex.ReadOnlyError, OSError)
# A Cluster with a slot nobody serves (mid-failover), or a redirect loop that did not settle.
_CLUSTER_AWAY = (
    rex.ClusterDownError,
    rex.TryAgainError,
    rex.AskError,
    rex.SlotNotCoveredError,
)


class RedisStore:
    """`Store` on Redis ≥ 5. `prefix` namespaces every key, so deployments can share a server."""

    def __init__(self, url: str, *, prefix: str = "mezzo") -> None:
        self.target = parse_target(url)
        if "{" in prefix or "}" in prefix:
            raise RedisConfigError(f"the key prefix may not contain braces: {prefix!r}")
        self.url = url
        self.prefix = prefix
        self.cluster = self.target.cluster
        self._where = self.target.where
        self._clients: RedisClients | None = None
        self._client: Any = None
        self._scripts: Scripts | None = None
        self._queues: RedisQueues | None = None
        self._feeds: Feeds | None = None
        self._live: LiveRelay | None = None
        self._wakeups: Wakeups | None = None
        self._run_workspaces: dict[str, str] = {}
        self.server_version: tuple[int, ...] = ()

    @property
    def partitions(self) -> int:
        """The queues' partitions (known once open)."""
        return self._queues.partitions if self._queues is not None else 0

    # ---- lifecycle

    async def open(self) -> None:
        if self._client is not None:
            return
        clients = make_clients(self.target, self.prefix)
        client = clients.commands
        try:
            version = await self._check_server(client)
            default = CLUSTER_PARTITIONS if self.cluster else SINGLE_PARTITIONS
            with self._translate():
                partitions = await agreed_partitions(
                    client, self.prefix, self.target.partitions, default, self._where
                )
        except BaseException:
            await clients.aclose()
            raise
        self.server_version = version
        self._clients = clients
        self._client = client
        self._scripts = register_scripts(client, one_slot=version >= (7, 0))
        self._queues = RedisQueues(client, self._scripts, self.prefix, partitions)
        self._feeds = Feeds(clients.blocking, self._log_key)
        self._live = LiveRelay(client, clients.pubsub_client, self._live_channel)
        self._wakeups = Wakeups(clients.pubsub_client, self._queues.wake_pattern())

    async def _check_server(self, client: Any) -> tuple[int, int]:
        """Connect (the client's setup commands, then PING and INFO); the server's version (on
        a Cluster, the first node's: `redis-cli --cluster create` wants one version)."""
        try:
            with self._translate():
                if self.cluster:
                    await client.initialize()
                await client.ping()
                info = await client.info("server")
        except rex.ResponseError as exc:
            raise setup_refused(self._where, exc) from exc
        return server_version(info, self._where)

    async def close(self) -> None:
        if self._feeds is not None:
            await self._feeds.close()
            self._feeds = None
        if self._live is not None:
            await self._live.close()
            self._live = None
        if self._wakeups is not None:
            await self._wakeups.close()
            self._wakeups = None
        if self._clients is not None:
            await self._clients.aclose()
        self._clients = self._client = None
        self._scripts = None
        self._queues = None

    async def __aenter__(self) -> RedisStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def wait_for_change(self, within: float) -> None:
        """Return when a job became ready in any queue (any process), or after `within` s."""
        if self._wakeups is None:
            await asyncio.sleep(within)
            return
        await self._wakeups.wait(within)

    # ---- plumbing

    @contextlib.contextmanager
    def _translate(self) -> Iterator[None]:
        """Connection trouble becomes StoreUnavailable with a message a person can act on."""
        try:
            yield
        except rex.AuthenticationError as exc:
            raise StoreUnavailable(
                f"Redis at {self._where} refused the credentials ({exc}); check the user and "
                "password in the URL"
            ) from exc
        except rex.NoPermissionError as exc:
            raise StoreUnavailable(
                f"Redis at {self._where}: the user may not run a command mezzo needs ({exc})"
            ) from exc
        except rex.BusyLoadingError as exc:
            raise StoreUnavailable(
                f"Redis at {self._where} is still loading its data; try again shortly"
            ) from exc
        except rex.InvalidResponse as exc:
            raise StoreUnavailable(
                f"{self._where} does not answer like a Redis server ({exc})"
            ) from exc
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(f"Redis at {self._where} is unreachable: {exc}") from exc
        except _CLUSTER_AWAY as exc:
            raise StoreUnavailable(
                f"Redis Cluster at {self._where} cannot serve this now ({type(exc).__name__}: "
                f"{exc}); try again shortly"
            ) from exc
        except rex.RedisClusterException as exc:
            raise _cluster_refusal(self._where, exc) from exc
        except rex.ResponseError as exc:
            if str(exc).startswith(("NOAUTH", "WRONGPASS")):
                raise StoreUnavailable(
                    f"Redis at {self._where} wants a password ({exc}); put it in the URL: "
                    "redis://:PASSWORD@host:port/db"
                ) from exc
            if str(exc).startswith(("MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "LOADING")):
                raise StoreUnavailable(f"Redis at {self._where}: {exc}") from exc
            raise

    def _ready(self) -> tuple[Any, Scripts]:
        if self._client is None or self._scripts is None:
            raise RuntimeError("store is not open")
        return self._client, self._scripts

    def _ws(self, workspace: str, part: str) -> str:
        return f"{self.prefix}:{{w:{workspace}}}:{part}"

    def _log_key(self, workspace: str) -> str:
        return self._ws(workspace, "log")

    def _live_channel(self, workspace: str) -> str:
        return self._ws(workspace, "live")

    def _ledger_key(self, workspace: str) -> str:
        return self._ws(workspace, "ledger")

    def _hold_keys(self, workspace: str) -> list[str]:
        """The ledger, the open holds and their expiry."""
        return [
            self._ledger_key(workspace),
            self._ws(workspace, "holds"),
            self._ws(workspace, "hold-expiry"),
        ]

    def _log_keys(self, workspace: str, run: str | None) -> list[str]:
        return [
            self._log_key(workspace),
            self._ws(workspace, "head"),
            self._ws(workspace, "versions"),
            self._ws(workspace, f"run:{run or ''}"),
            self._ws(workspace, "open-runs"),
        ]

    def _kv_keys(self) -> list[str]:
        return [f"{self.prefix}:{{kv}}:values", f"{self.prefix}:{{kv}}:index"]

    def _runs_key(self) -> str:
        return f"{self.prefix}:runs"

    def _active_key(self) -> str:
        return f"{self.prefix}:active-runs"

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
        _, scripts = self._ready()
        if not events:
            raise ValueError("append needs at least one event")
        args: list[str | int] = [
            run or "",
            "" if expected_version is None or run is None else expected_version,
            len(events),
            *_event_args(events),
        ]
        keys = self._log_keys(workspace, run)
        with self._translate():
            if run is None:  # a workspace's own event: no run index, no version
                result = await scripts.append(keys, args)
                if enqueue is not None:
                    await self._queue().enqueue(enqueue, 0.0)
            else:
                result = await shielded(
                    self._append_and_index(workspace, run, events, keys, args, enqueue)
                )
        return self._appended(workspace, run, events, expected_version, result)

    def _appended(
        self,
        workspace: str,
        run: str | None,
        events: Sequence[NewEvent],
        expected_version: int | None,
        result: Sequence[Any],
    ) -> list[Event]:
        last, ts = int(result[0]), result[1]
        if last < 0:
            assert run is not None and expected_version is not None
            raise VersionConflict(run, expected_version, int(ts))
        if run is not None:
            self._run_workspaces[run] = workspace
        first = last - len(events) + 1
        return [
            Event(
                seq=first + i, workspace=workspace, run=run, type=e.type, ts=float(ts), data=e.data
            )
            for i, e in enumerate(events)
        ]

    def _run_index_commands(
        self, workspace: str, run: str | None, events: Sequence[NewEvent]
    ) -> list[tuple[str, ...]]:
        """What the run index needs beside an append: the run's workspace the first time this
        process sees the run, and whether it is active."""
        if run is None:
            return []
        commands: list[tuple[str, ...]] = []
        if run not in self._run_workspaces:
            commands.append(("HSETNX", self._runs_key(), run, workspace))
        if any(e.type in TERMINAL_EVENT_TYPES for e in events):
            commands.append(("ZREM", self._active_key(), run))
        elif run not in self._run_workspaces:
            commands.append(("ZADD", self._active_key(), "NX", "0", run))
        return commands

    async def _append_and_index(
        self,
        workspace: str,
        run: str,
        events: Sequence[NewEvent],
        keys: list[str],
        args: list[str | int],
        enqueue: NewJob | None,
    ) -> Any:
        """A run's append (checked against its version when one is given), its run index and
        its job.

        Round trip 1 indexes a run this process has not seen (before its events, so a crash
        in between leaves an index entry that `recover()` follows, never an accepted run that
        nothing points at) and appends. Round trip 2, only once the append went in, enqueues
        the job and unindexes an ended run. A refused append takes back the active-index
        entry it added, unless the run is still open (another writer's first append won).
        On a Cluster the keys of one round trip live on several nodes, which answer in no
        particular order: hence two round trips even where an append cannot conflict.

        With `durability=replicated`, an append that enqueues (a run accepted, resumed, or
        given its tool results: what a client was told is safe) ends each round trip with
        `WAIT 1` on every node it wrote to, on the connection that wrote, and is
        StoreUnavailable unless every `WAIT` saw a replica."""
        client, scripts = self._ready()
        terminal = any(e.type in TERMINAL_EVENT_TYPES for e in events)
        unseen = run not in self._run_workspaces
        activate = unseen and not terminal
        replicate = enqueue is not None and self.target.durability == "replicated"
        written = [keys[0]]
        if unseen:
            written.append(self._runs_key())
        if activate:
            written.append(self._active_key())

        def index_and_append(pipe: Any) -> None:
            if unseen:
                pipe.hsetnx(self._runs_key(), run, workspace)
            if activate:
                pipe.zadd(self._active_key(), {run: 0}, nx=True)
            pipelined(pipe, scripts.append, keys, args)
            if replicate:
                self._wait_for_replica(pipe, written)

        replies = await execute_pipeline(client, index_and_append, [scripts.append])
        waits = self._waits(written) if replicate else 0
        acks = replies[len(replies) - waits :]
        *indexed, result = replies[: len(replies) - waits]
        if int(result[0]) < 0:
            if activate and int(indexed[-1]) == 1:
                await self._unindex_if_ended(workspace, run)
            return result
        if enqueue is not None or terminal:
            queues = self._queue()
            written = []
            if enqueue is not None:
                written.append(queues.enqueue_keys(enqueue)[0])
            if terminal:
                written.append(self._active_key())

            def enqueue_and_unindex(pipe: Any) -> None:
                if enqueue is not None:
                    queues.enqueue_on(pipe, enqueue, 0.0)
                if terminal:
                    pipe.zrem(self._active_key(), run)
                if replicate:
                    self._wait_for_replica(pipe, written)

            replies = await execute_pipeline(client, enqueue_and_unindex, [scripts.enqueue])
            waits = self._waits(written) if replicate else 0
            acks += replies[len(replies) - waits :]
        if any(int(replicas) < 1 for replicas in acks):
            raise StoreUnavailable(
                f"Redis at {self._where}: no replica acknowledged the write within "
                f"{self.target.replica_wait_ms} ms (durability=replicated), so a failover "
                "could lose it; try again"
            )
        return result

    def _wait_for_replica(self, pipe: Any, written: list[str]) -> None:
        """Queue `WAIT 1 <ms>` on `pipe` for every node that holds one of `written` (one
        server: the one). WAIT counts only the writes of the connection it is sent on, so it
        must go in the pipeline that wrote."""
        timeout = self.target.replica_wait_ms
        if not self.cluster:
            pipe.execute_command("WAIT", 1, timeout)
            return
        for node in self._nodes(written).values():
            pipe.execute_command("WAIT", 1, timeout, target_nodes=node)

    def _nodes(self, keys: list[str]) -> dict[str, Any]:
        nodes = {}
        for key in keys:
            node = self._client.get_node_from_key(key)
            nodes[node.name] = node
        return nodes

    def _waits(self, written: list[str]) -> int:
        """How many WAITs `_wait_for_replica` queued for `written`."""
        return len(self._nodes(written)) if self.cluster else 1

    async def _unindex_if_ended(self, workspace: str, run: str) -> None:
        client, _ = self._ready()
        # The append script keeps `open-runs` in step with the log, so a run absent from it
        # has ended (a conflict means it has events); removing an ended run is always right.
        if await client.zscore(self._ws(workspace, "open-runs"), run) is None:
            await client.zrem(self._active_key(), run)

    async def read(
        self,
        workspace: str,
        after_seq: int = 0,
        types: Sequence[str] | None = None,
        limit: int = 1000,
        run: str | None = None,
    ) -> list[Event]:
        self._ready()
        wanted = set(types) if types else None
        out: list[Event] = []
        cursor = after_seq
        while len(out) < limit:
            page, cursor, exhausted = await self._page(workspace, cursor, run, max(limit, PAGE))
            for event in page:
                if wanted is None or event.type in wanted:
                    out.append(event)
                    if len(out) == limit:
                        break
            if exhausted:
                break
        return out

    async def _page(
        self, workspace: str, after: int, run: str | None, count: int
    ) -> tuple[list[Event], int, bool]:
        """One page of events after `after`: (events, last seq looked at, nothing more)."""
        client, scripts = self._ready()
        with self._translate():
            if run is None:
                entries = await client.xrange(
                    self._log_key(workspace), f"{after + 1}-0", "+", count
                )
                events = [parse_entry(workspace, id_, fields) for id_, fields in entries]
                last = events[-1].seq if events else after
                return events, last or after, len(entries) < count
            looked, last, raw = await scripts.read_run(
                [self._log_key(workspace), self._ws(workspace, f"run:{run}")], [after, count]
            )
        events = [
            parse_entry(workspace, id_, dict(zip(flat[::2], flat[1::2], strict=True)))
            for id_, flat in raw
        ]
        return events, int(last), int(looked) < count

    async def tail(
        self,
        workspace: str,
        after_seq: int = 0,
        types: Sequence[str] | None = None,
        run: str | None = None,
    ) -> AsyncIterator[Event]:
        self._ready()
        assert self._feeds is not None
        wanted = set(types) if types else None
        cursor = after_seq
        feed: Feed | None = None
        try:
            while True:
                changed = feed.changed if feed is not None else None
                known = feed.head if feed is not None else 0
                batch = feed.since(cursor) if feed is not None else None
                complete = True
                if batch is None:
                    batch = await self.read(workspace, cursor, None, PAGE, run)
                    complete = len(batch) < PAGE
                for event in batch:
                    assert event.seq is not None
                    cursor = event.seq
                    if (run is None or event.run == run) and (
                        wanted is None or event.type in wanted
                    ):
                        yield event
                if not complete:
                    continue
                # Everything up to what the feed knew before the read has been seen.
                cursor = max(cursor, known)
                if feed is None:
                    feed = self._feeds.join(workspace, cursor)
                    continue
                if changed is not None and not batch:
                    # No timeout: the feed wakes its subscribers on every batch and every error.
                    await changed.wait()
        finally:
            if feed is not None and self._feeds is not None:
                self._feeds.leave(workspace, feed)

    async def head(self, workspace: str) -> int:
        client, _ = self._ready()
        with self._translate():
            value = await client.get(self._ws(workspace, "head"))
        return int(value) if value else 0

    async def run_version(self, run: str) -> int:
        client, _ = self._ready()
        with self._translate():
            workspace = self._run_workspaces.get(run) or await client.hget(self._runs_key(), run)
            if workspace is None:
                return 0
            self._run_workspaces[run] = workspace
            value = await client.hget(self._ws(workspace, "versions"), run)
        return int(value) if value else 0

    async def run_workspace(self, run: str) -> str | None:
        client, _ = self._ready()
        known = self._run_workspaces.get(run)
        if known is not None:
            return known
        with self._translate():
            workspace = await client.hget(self._runs_key(), run)
        if workspace is not None:
            self._run_workspaces[run] = workspace
        return workspace

    async def active_runs(
        self, limit: int = 1000, workspace: str | None = None
    ) -> list[tuple[str, str]]:
        client, _ = self._ready()
        with self._translate():
            if workspace is not None:  # the workspace's open runs, kept by the append script
                opened = await client.zrange(self._ws(workspace, "open-runs"), 0, max(0, limit - 1))
                return [(run, workspace) for run in opened]
            runs = await client.zrange(self._active_key(), 0, max(0, limit - 1))
            workspaces = await client.hmget(self._runs_key(), runs) if runs else []
        return [(r, w) for r, w in zip(runs, workspaces, strict=True) if w is not None]

    async def trim(self, workspace: str, keep: int = 10_000) -> int:
        """Drop events older than the newest `keep`, but none at or after the first event of a
        run that has not ended (completed, failed, cancelled). Returns how many went.
        Needs Redis ≥ 6.2 (XTRIM MINID)."""
        _, scripts = self._ready()
        if self.server_version < (6, 2):
            raise RedisConfigError("trimming the event log needs Redis 6.2 or later")
        keys = [
            self._log_key(workspace),
            self._ws(workspace, "head"),
            self._ws(workspace, "open-runs"),
        ]
        with self._translate():
            removed, _ = await scripts.trim(keys, [max(keep, 0)])
        return int(removed)

    # ---- live events

    async def publish_live(self, event: Event) -> None:
        self._ready()
        assert self._live is not None
        with self._translate():
            await self._live.publish(event)

    async def live(self, workspace: str) -> AsyncIterator[Event]:
        self._ready()
        assert self._live is not None
        with self._translate():
            async for event in self._live.subscribe(workspace):
                yield event

    # ---- queue (partitioned: redis_queue.py)

    def _queue(self) -> RedisQueues:
        self._ready()
        assert self._queues is not None
        return self._queues

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
        queues = self._queue()
        delay = 0.0 if not_before is None else not_before - time.time()
        job = NewJob(queue, job_id, payload, priority, max_attempts)
        with self._translate():
            return await queues.enqueue(job, delay)

    async def lease(self, queue: str, worker: str, n: int, lease_s: float) -> list[Job]:
        queues = self._queue()
        with self._translate():
            return await queues.lease(queue, worker, n, lease_s)

    @staticmethod
    def _lost(job: Job) -> NoReturn:
        raise LeaseLost(f"job {job.id}: lease {job.token} is no longer held")

    async def extend(self, job: Job, lease_s: float) -> Job:
        queues = self._queue()
        with self._translate():
            held = await queues.extend(job, lease_s)
        if not held:
            self._lost(job)
        fields = {name: getattr(job, name) for name in Job.__slots__}
        return Job(**{**fields, "lease_until": time.time() + lease_s})

    async def ack(self, job: Job) -> None:
        queues = self._queue()
        with self._translate():
            held = await queues.ack(job)
        if not held:
            self._lost(job)

    async def retry(self, job: Job, delay_s: float, error: str) -> bool:
        queues = self._queue()
        with self._translate():
            outcome = await queues.retry(job, delay_s, error)
        if outcome < 0:
            self._lost(job)
        return bool(outcome)

    async def release(self, job: Job, delay_s: float = 0.0) -> None:
        queues = self._queue()
        with self._translate():
            held = await queues.release(job, delay_s)
        if not held:
            self._lost(job)

    async def queue_depth(self, queue: str) -> dict[int, int]:
        queues = self._queue()
        with self._translate():
            return await queues.depth(queue)

    async def queue_oldest(self, queue: str) -> dict[int, float]:
        queues = self._queue()
        with self._translate():
            return await queues.oldest(queue)

    async def dead_letters(self, queue: str, limit: int = 100) -> list[DeadJob]:
        queues = self._queue()
        with self._translate():
            return await queues.dead_letters(queue, limit)

    async def requeue_dead(self, queue: str, job_id: str) -> bool:
        queues = self._queue()
        with self._translate():
            return await queues.requeue_dead(queue, job_id)

    # ---- key-value

    async def kv_get(self, key: str) -> dict[str, Any] | None:
        client, _ = self._ready()
        with self._translate():
            raw = await client.hget(self._kv_keys()[0], key)
        return json.loads(raw) if raw is not None else None

    async def _kv(self, op: str, key: str, value: dict[str, Any] | None = None) -> bool:
        _, scripts = self._ready()
        body = json.dumps(value, separators=(",", ":")) if value is not None else ""
        with self._translate():
            return bool(await scripts.kv(self._kv_keys(), [op, key, body]))

    async def kv_put(self, key: str, value: dict[str, Any]) -> None:
        await self._kv("put", key, value)

    async def kv_put_if_absent(self, key: str, value: dict[str, Any]) -> bool:
        return await self._kv("put_if_absent", key, value)

    async def kv_delete(self, key: str) -> bool:
        return await self._kv("delete", key)

    async def kv_scan(self, prefix: str, limit: int = 1000) -> list[tuple[str, dict[str, Any]]]:
        client, _ = self._ready()
        values, index = self._kv_keys()
        low: bytes | str = b"[" + prefix.encode() if prefix else "-"
        high: bytes | str = b"(" + prefix.encode() + b"\xff" if prefix else "+"
        with self._translate():
            keys = await client.zrangebylex(index, low, high, 0, limit) if limit > 0 else []
            rows = await client.hmget(values, keys) if keys else []
        return [(k, json.loads(v)) for k, v in zip(keys, rows, strict=True) if v is not None]

    # ---- token ledger

    async def ledger_init(self, workspace: str, budget: int) -> None:
        _, scripts = self._ready()
        with self._translate():
            await scripts.ledger_init([self._ledger_key(workspace)], [int(budget)])

    @staticmethod
    def _ledger_state(workspace: str, row: Sequence[Any] | None) -> LedgerState:
        if row is None or row[0] is None:
            raise KeyError(f"no ledger for workspace {workspace}")
        budget, committed, reserved, alerts = row
        return LedgerState(
            budget=int(budget),
            committed=int(committed),
            reserved=int(reserved),
            alerts_fired=sorted(float(t) for t in (alerts or "").split()),
        )

    async def ledger_get(self, workspace: str) -> LedgerState:
        client, _ = self._ready()
        with self._translate():
            row = await client.hmget(
                self._ledger_key(workspace), ["budget", "committed", "reserved", "alerts"]
            )
        return self._ledger_state(workspace, row)

    async def ledger_add(self, workspace: str, tokens: int) -> LedgerState:
        _, scripts = self._ready()
        with self._translate():
            row = await scripts.ledger_add([self._ledger_key(workspace)], [int(tokens)])
        return self._ledger_state(workspace, row)

    async def hold(
        self,
        workspace: str,
        hold: Hold,
        *,
        run: str | None = None,
        events: Sequence[NewEvent] = (),
        expected_version: int | None = None,
    ) -> HoldResult:
        _, scripts = self._ready()
        keys = [
            *self._hold_keys(workspace),
            self._ws(workspace, "hold-line"),
            *self._log_keys(workspace, run),
        ]
        args: list[str | int] = [
            hold.id,
            int(hold.tokens),
            int(hold.minimum),
            int(hold.priority),
            repr(float(hold.ttl_s)),
            repr(WAITER_TTL_S),
            run or "",
            "" if expected_version is None or run is None else expected_version,
            len(events),
            *_event_args(events),
        ]
        with self._translate():
            outcome = await scripts.hold(keys, args)
            status = int(outcome[0])
            if status == -1:
                raise KeyError(f"no ledger for workspace {workspace}")
            if status == -2:
                assert run is not None and expected_version is not None
                raise VersionConflict(run, expected_version, int(outcome[1]))
            ledger = self._ledger_state(workspace, outcome[2:6])
            stored: list[Event] = []
            if status == 1 and events:
                index = self._run_index_commands(workspace, run, events)
                if index:
                    await self._index(index)
                stored = self._appended(workspace, run, events, expected_version, outcome[6:8])
        return HoldResult(int(outcome[1]), ledger, stored)

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
        _, scripts = self._ready()
        ordered = sorted(float(t) for t in thresholds)
        keys = [
            *self._hold_keys(workspace),
            self._ws(workspace, f"settled:{hold_id}"),
            self._ws(workspace, f"reservation:{hold_id}"),
            *self._log_keys(workspace, run),
        ]
        args: list[str | int] = [
            hold_id,
            int(actual),
            len(ordered),
            *(repr(t) for t in ordered),
            run or "",
            "" if expected_version is None or run is None else expected_version,
            len(events),
            *_event_args(events),
        ]
        with self._translate():
            outcome = await scripts.settle(keys, args)
            if outcome is None:
                raise KeyError(f"no ledger for workspace {workspace}")
            committed, budget, charged, already, last, ts, *crossed = outcome
            commit = CommitResult(
                committed=int(committed),
                budget=int(budget),
                charged=int(charged),
                already_committed=bool(int(already)),
                thresholds_crossed=tuple(ordered[int(i) - 1] for i in crossed),
            )
            if int(last) < 0:
                return Settlement(commit, conflict=True)
            stored: list[Event] = []
            if events:
                index = self._run_index_commands(workspace, run, events)
                if index:
                    await self._index(index)
                stored = self._appended(workspace, run, events, expected_version, (last, ts))
        return Settlement(commit, stored)

    async def release_reservation(self, workspace: str, hold_id: str) -> None:
        _, scripts = self._ready()
        keys = [
            *self._hold_keys(workspace),
            self._ws(workspace, f"reservation:{hold_id}"),
            self._ws(workspace, "hold-line"),
        ]
        with self._translate():
            await scripts.release_hold(keys, [hold_id])

    async def _index(self, commands: list[tuple[str, ...]]) -> None:
        client, _ = self._ready()
        async with client.pipeline(transaction=False) as pipe:
            for command in commands:
                pipe.execute_command(*command)
            await pipe.execute()

    # ---- shared rate limiter (GCRA)

    async def acquire(
        self,
        key: str,
        requests: int,
        tokens: int,
        limits: tuple[RateLimit | None, RateLimit | None],
    ) -> float:
        _, scripts = self._ready()
        args: list[str | int] = [int(requests), int(tokens)]
        for limit in limits:
            if limit is None:
                args += ["", ""]
                continue
            if limit.per_minute <= 0:
                raise ValueError(f"per_minute must be positive, got {limit.per_minute}")
            args += [repr(float(limit.per_minute)), repr(_burst(limit))]
        with self._translate():
            wait = await scripts.acquire([self._rate_key(key)], args)
        return float(wait)

    async def block_until(self, key: str, until: float) -> None:
        _, scripts = self._ready()
        with self._translate():
            await scripts.block_until([self._rate_key(key)], [repr(until - time.time())])

    def _rate_key(self, key: str) -> str:
        return f"{self.prefix}:{{rl:{key}}}"


def _event_args(events: Sequence[NewEvent]) -> list[str | int]:
    args: list[str | int] = []
    for event in events:
        args += [event.type, json.dumps(event.data, separators=(",", ":"))]
    return args


def _cluster_refusal(where: str, exc: Exception) -> Exception:
    """What redis-py's cluster client raises when no seed would serve, in mezzo's words. Read
    from the message: redis-py 5 has one class for all of it (`RedisClusterException`), later
    ones add `RedisClusterUnreachableError` with the same message."""
    text = str(exc)
    if "Cluster mode is not enabled" in text:
        return RedisConfigError(
            f"{where} is not a Redis Cluster node (cluster mode is not enabled); for one "
            "server use redis://host:port/db"
        )
    if any(word in text for word in ("WRONGPASS", "NOAUTH", "AUTH", "password")):
        return StoreUnavailable(
            f"Redis Cluster at {where} refused the credentials ({text}); check the user and "
            "password in the URL"
        )
    if "cannot be connected" in text:
        return StoreUnavailable(
            f"Redis Cluster at {where} is unreachable: no node answered ({text})"
        )
    return StoreUnavailable(f"Redis Cluster at {where}: {text}")


def _burst(limit: RateLimit) -> float:
    """Mirrors `mezzo.store.gcra`: ten seconds' worth of the limit unless configured."""
    return float(limit.burst) if limit.burst is not None else max(1.0, limit.per_minute / 6.0)
