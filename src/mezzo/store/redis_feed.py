"""Fan-out of a Redis store's events to the tailers and live subscribers of one process.

Durable events: one reader task per workspace that has tailers in this process, blocked in
`XREAD BLOCK` on the workspace's stream over a connection of its own, keeps the newest events
in a ring. Every tailer of that workspace serves itself from the ring and falls back to a
plain read when it is behind the ring, so 10,000 subscribers of one workspace cost one
connection and one `XREAD` per batch of events, not 10,000.

Live events: one Pub/Sub connection per process, one channel per workspace with subscribers.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import redis.exceptions as rex
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from mezzo.protocol import Event
from mezzo.store.live import LiveHub

BLOCK_MS = 5000
T = TypeVar("T")


async def shielded(call: Awaitable[T]) -> T:
    """Await a redis-py call so that cancelling the caller always raises CancelledError in it.

    redis-py 8.1's asyncio client sometimes swallows a cancellation that lands mid-command: the
    command returns normally and the task runs on. A task that is then awaited after
    `cancel()` (a watcher stopped with `cancel(); await`) hangs forever. Here the command runs
    in a task of its own that is never cancelled: it finishes in the background (its reply
    read, its connection handed back in order) while the caller gets its CancelledError now.
    """
    task = asyncio.ensure_future(call)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.add_done_callback(_drop_outcome)
        raise


def _drop_outcome(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


class ShieldedRedis(Redis):
    """`Redis` whose every command goes through `shielded`."""

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        return await shielded(super().execute_command(*args, **options))


RING_SIZE = 2048
READ_COUNT = 512


def parse_entry(workspace: str, entry_id: str, fields: dict[str, str]) -> Event:
    return Event(
        seq=int(entry_id.split("-", 1)[0]),
        workspace=workspace,
        run=fields.get("r"),
        type=fields["t"],
        ts=float(fields["ts"]),
        data=json.loads(fields["d"]),
    )


class Feed:
    """The newest events of one workspace as this process has seen them."""

    def __init__(self, head: int) -> None:
        self.head = head
        self.recent: deque[Event] = deque(maxlen=RING_SIZE)
        self.changed = asyncio.Event()
        self.failing = False
        self.subscribers = 0
        self.task: asyncio.Task[None] | None = None

    def since(self, cursor: int) -> list[Event] | None:
        """The events after `cursor` when the ring holds all of them, else None."""
        if self.failing:
            return None
        if cursor >= self.head:
            return []
        if not self.recent or (self.recent[0].seq or 0) > cursor + 1:
            return None
        start = cursor + 1 - (self.recent[0].seq or 0)
        return list(itertools.islice(self.recent, start, None))

    def push(self, events: list[Event]) -> None:
        for event in events:
            if event.seq is not None and event.seq > self.head:
                self.recent.append(event)
                self.head = event.seq
        self.failing = False
        self.notify()

    def notify(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()


class Feeds:
    """One `Feed` and one blocking reader per workspace with tailers in this process."""

    def __init__(self, blocking: Redis, stream_key: Callable[[str], str]) -> None:
        self._blocking = blocking
        self._stream_key = stream_key
        self._feeds: dict[str, Feed] = {}

    def join(self, workspace: str, cursor: int) -> Feed:
        feed = self._feeds.get(workspace)
        if feed is None:
            feed = Feed(cursor)
            feed.task = asyncio.create_task(self._pump(workspace, feed))
            self._feeds[workspace] = feed
        feed.subscribers += 1
        return feed

    def leave(self, workspace: str, feed: Feed) -> None:
        feed.subscribers -= 1
        if feed.subscribers <= 0 and self._feeds.get(workspace) is feed:
            del self._feeds[workspace]
            if feed.task is not None:
                feed.task.cancel()

    async def close(self) -> None:
        tasks = [feed.task for feed in self._feeds.values() if feed.task is not None]
        self._feeds.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _pump(self, workspace: str, feed: Feed) -> None:
        key = self._stream_key(workspace)
        backoff = 0.05
        while True:
            try:
                reply: Any = await self._blocking.xread(
                    {key: f"{feed.head}-0"}, count=READ_COUNT, block=BLOCK_MS
                )
            except Exception:
                # Subscribers wake, see `failing` and read the stream themselves, which raises
                # StoreUnavailable to them while Redis is away.
                feed.failing = True
                feed.notify()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            backoff = 0.05
            for _key, entries in reply or ():
                feed.push([parse_entry(workspace, id_, fields) for id_, fields in entries])


class LiveRelay:
    """Live-only events over Redis Pub/Sub: one connection, one channel per workspace.

    The connection comes from `connect` (a plain client to one node, see `redis_clients`);
    when it fails, the reader opens another, perhaps to another node, and subscribes again
    to every channel that has subscribers here. Deltas published meanwhile are missed: they
    are at most once by design."""

    def __init__(
        self, publisher: Any, connect: Callable[[], Redis], channel: Callable[[str], str]
    ) -> None:
        self._publisher = publisher
        self._connect = connect
        self._channel = channel
        self._hub = LiveHub()
        self._counts: dict[str, int] = {}
        self._client: Redis | None = None
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None

    async def publish(self, event: Event) -> None:
        # A raw command: redis-py before 8 has no `publish` on its async Cluster client.
        channel = self._channel(event.workspace)
        await self._publisher.execute_command("PUBLISH", channel, event.model_dump_json())

    async def subscribe(self, workspace: str) -> AsyncIterator[Event]:
        await self._acquire(workspace)
        try:
            async for event in self._hub.subscribe(workspace):
                yield event
        finally:
            await self._release(workspace)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        await self._disconnect()

    def _pubsub_now(self) -> PubSub:
        if self._pubsub is None:
            self._client = self._connect()
            self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        return self._pubsub

    async def _disconnect(self) -> None:
        pubsub, client = self._pubsub, self._client
        self._pubsub = self._client = None
        with contextlib.suppress(rex.RedisError, OSError):
            if pubsub is not None:
                await pubsub.aclose()
            if client is not None:
                await client.aclose()

    async def _acquire(self, workspace: str) -> None:
        pubsub = self._pubsub_now()
        count = self._counts.get(workspace, 0)
        self._counts[workspace] = count + 1
        if count == 0:
            try:
                await shielded(pubsub.subscribe(self._channel(workspace)))
            except BaseException:
                self._counts[workspace] -= 1
                if not self._counts[workspace]:
                    del self._counts[workspace]
                raise
        if self._reader is None:
            self._reader = asyncio.create_task(self._read())

    async def _release(self, workspace: str) -> None:
        self._counts[workspace] -= 1
        if self._counts[workspace] > 0:
            return
        del self._counts[workspace]
        if self._pubsub is not None:
            with contextlib.suppress(rex.RedisError, OSError):
                await shielded(self._pubsub.unsubscribe(self._channel(workspace)))

    async def _read(self) -> None:
        backoff = 0.05
        broken = False
        while True:
            try:
                if broken:
                    await self._disconnect()
                    channels = [self._channel(workspace) for workspace in self._counts]
                    if channels:
                        await shielded(self._pubsub_now().subscribe(*channels))
                    broken = False
                message = await shielded(self._pubsub_now().get_message(timeout=1.0))
            except (rex.ConnectionError, rex.TimeoutError, OSError):
                broken = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            backoff = 0.05
            if message is None or message.get("type") != "message":
                continue
            with contextlib.suppress(ValueError):
                self._hub.publish(Event.model_validate_json(message["data"]))


class Wakeups:
    """Wakes idle workers when a queue script made a job ready, in this process or another.

    Listens with `PSUBSCRIBE` on a connection from `connect` (any node of a Cluster: the
    scripts' `PUBLISH` reaches them all) and opens another when it fails."""

    def __init__(self, connect: Callable[[], Redis], pattern: str) -> None:
        self._connect = connect
        self._pattern = pattern
        self._changed = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    async def wait(self, within: float) -> None:
        if self._reader is None:
            self._reader = asyncio.create_task(self._read())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), within)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _read(self) -> None:
        backoff = 0.05
        while True:
            client = self._connect()
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await shielded(pubsub.psubscribe(self._pattern))
                backoff = 0.05
                # Whatever was published while no one listened may have made a job ready.
                self._notify()
                while True:
                    message = await shielded(pubsub.get_message(timeout=5.0))
                    if message is not None and message.get("type") == "pmessage":
                        self._notify()
            except (rex.ConnectionError, rex.TimeoutError, OSError):
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
            finally:
                with contextlib.suppress(rex.RedisError, OSError):
                    await pubsub.aclose()
                    await client.aclose()
