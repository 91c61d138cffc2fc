"""One reader per workspace, many sockets: the fan-out of a workspace's events to this process's
WebSocket and SSE subscribers.

A subscriber that ran its own `store.tail` cost Python one coroutine wake-up and one JSON
encoding per event per subscriber: 10,000 subscribers of a workspace meant 10,000 encodings of
every event (docs/benchmarks.md). Here a `Dispatcher` per workspace key reads the store once
(`store.tail` for durable events, `store.live` for text deltas), encodes each event once, under
the tenant's id for the workspace, and hands the text to every `Subscription` of the workspace.

Each subscription has a bounded buffer. The dispatcher never waits for a subscriber: one whose
buffer is full is cut off (its socket is closed with `BEHIND`, and the client resumes from the
last seq it received), so a slow reader costs a bounded amount of memory and never delays the
others.

A subscriber that starts from an old `after` first replays from the store (`store.read`, in its
own task, at its own pace) and joins the dispatcher at the exact seq the dispatcher has reached:
the check and the join run with no await between them, so nothing falls into the seam between
replay and live, and nothing comes twice. Text deltas are live only: a subscriber gets those
published after it joined.

A workspace's dispatcher starts with its first subscriber and stops when its last one leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

from mezzo.logs import get_logger
from mezzo.protocol import CLOSE_BEHIND, Event
from mezzo.server.encoding import event_json
from mezzo.server.ws_frames import FrameSink, text_frame
from mezzo.service import shown_event
from mezzo.store.base import Store
from mezzo.workspaces import WorkspaceRecord

log = get_logger("mezzo.server.fanout")

# WebSocket close code for a subscriber cut off because it read slower than events came. The
# reason names the last seq handed to its socket; the client resumes from the last seq it got.
BEHIND = CLOSE_BEHIND
# WebSocket close code when the workspace's reader failed (the store is away): try again later.
RETRY_LATER = 1013
# A subscriber is cut off when its buffer would hold more than this many events, or more than
# this many bytes of them (the texts are shared by all subscribers; these bytes are what one
# slow subscriber keeps alive).
BUFFER_EVENTS = 1024
BUFFER_BYTES = 4 << 20
# Subscribers served per turn of the event loop while one event goes out (about 10 ms of
# socket writes on the 2-core machine of docs/benchmarks.md).
PUBLISH_SLICE = 1000
# Events per store read while a subscriber replays from an old `after`.
REPLAY_PAGE = 256


@dataclass(frozen=True, slots=True)
class Encoded:
    """An event as every subscriber of its workspace gets it: encoded once, and framed once
    for the sockets that take frames directly (`mezzo.server.ws_frames`)."""

    seq: int | None
    type: str
    text: str
    frame: bytes = b""

    @classmethod
    def framed(cls, seq: int | None, kind: str, text: str) -> Encoded:
        return cls(seq, kind, text, text_frame(text.encode()))


def behind_reason(seq: int) -> str:
    return f"behind: resume after seq {seq}"


class Subscription:
    """One subscriber: its type filter, its bounded buffer of encoded events, its position.

    `replay()` first, then `take()` / `wait()` until `ended` (or iterate it, which does both).
    `on_end`, when set, is called the moment the subscription is cut off (`behind`) or its
    reader fails (`failed`), from the dispatcher: the WebSocket route cancels its writer with
    it, which may be stuck in a send to a client that stopped reading.

    With a `sink`, a live event goes straight onto the socket when nothing is buffered or
    being sent and the socket takes it now; the buffer holds only what it did not take, and
    the consumer marks `sending` while it sends one, so the order on the wire stays the order
    of the log.
    """

    __slots__ = (
        "_buffer",
        "_bytes",
        "_dispatcher",
        "_floor",
        "_waiter",
        "after",
        "behind",
        "failed",
        "on_end",
        "sending",
        "sent",
        "sink",
        "wanted",
    )

    def __init__(
        self,
        dispatcher: Dispatcher,
        after: int,
        wanted: Sequence[str] | None,
        sink: FrameSink | None = None,
    ) -> None:
        self._dispatcher = dispatcher
        self.sink = sink
        self.sending = False
        self.after = after
        self.wanted: frozenset[str] | None = frozenset(wanted) if wanted else None
        self.sent = after  # the seq of the last durable event taken from this subscription
        self.behind = False
        self.failed = False
        self.on_end: Callable[[], object] | None = None
        self._buffer: deque[Encoded] = deque()
        self._bytes = 0
        self._floor = after
        self._waiter: asyncio.Future[bool] | None = None

    @property
    def ended(self) -> bool:
        return self.behind or self.failed

    def wants(self, kind: str) -> bool:
        return self.wanted is None or kind in self.wanted

    async def replay(self) -> AsyncIterator[Encoded]:
        """The stored events after `after` up to where the dispatcher is; then this
        subscription is live (its buffer fills from the dispatcher)."""
        dispatcher = self._dispatcher
        await dispatcher.ready.wait()
        durable = sorted(self.wanted - {"delta"}) if self.wanted else None
        cursor = self.after
        if self.wanted is not None and not durable:
            cursor = max(cursor, dispatcher.position)  # deltas only: nothing to replay
        # The seam: `cursor < position` is checked and `join` runs with no await between.
        while dispatcher.error is None and cursor < dispatcher.position:
            reached = dispatcher.position
            page = await dispatcher.store.read(dispatcher.key, cursor, durable, REPLAY_PAGE)
            for event in page:
                assert event.seq is not None
                cursor = self.sent = event.seq
                yield dispatcher.encode(event)
            if len(page) < REPLAY_PAGE:
                # No more of the wanted types up to the head at the read, which was at least
                # `reached`.
                cursor = max(cursor, reached)
        self._floor = cursor
        dispatcher.join(self)

    def take(self) -> Encoded | None:
        """The next buffered event, or None when none is waiting."""
        if not self._buffer:
            return None
        item = self._buffer.popleft()
        self._bytes -= len(item.text)
        if item.seq is not None:
            self.sent = item.seq
        return item

    async def wait(self, within: float | None = None) -> bool:
        """Until an event is buffered or the subscription ends (True), or `within` seconds
        pass (False)."""
        if self._buffer or self.ended:
            return True
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = None if within is None else loop.call_later(within, _wake, waiter, False)
        try:
            return await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    async def __aiter__(self) -> AsyncIterator[Encoded]:
        async for replayed in self.replay():
            yield replayed
        while not self.ended:
            item = self.take()
            if item is None:
                await self.wait()
            else:
                yield item

    # ---- called by the dispatcher

    def offer(self, item: Encoded) -> bool:
        """Buffer `item`; False when it does not fit, and the subscription is now cut off."""
        if item.seq is not None and item.seq <= self._floor:
            return True  # it came with the replay
        if (
            self.sink is not None
            and not self._buffer
            and not self.sending
            and self.sink.write(item.frame)
        ):
            if item.seq is not None:
                self.sent = item.seq
            return True
        if len(self._buffer) >= BUFFER_EVENTS or self._bytes + len(item.text) > BUFFER_BYTES:
            self._end(behind=True)
            return False
        self._buffer.append(item)
        self._bytes += len(item.text)
        if self._waiter is not None:
            _wake(self._waiter)
        return True

    def fail(self) -> None:
        self._end(behind=False)

    def _end(self, *, behind: bool) -> None:
        if self.ended:
            return
        self.behind, self.failed = behind, not behind
        self._buffer.clear()
        self._bytes = 0
        if self._waiter is not None:
            _wake(self._waiter)
        if self.on_end is not None:
            self.on_end()


def _wake(waiter: asyncio.Future[bool], woken: bool = True) -> None:
    if not waiter.done():
        waiter.set_result(woken)


@dataclass(eq=False)
class Dispatcher:
    """The one reader of a workspace's events in this process, and its live subscribers."""

    store: Store
    record: WorkspaceRecord
    # The seq of the last durable event handed to the subscribers (known once `ready`).
    position: int = 0
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    error: BaseException | None = None
    members: int = 0  # subscriptions that hold this dispatcher: replaying or live
    live: dict[Subscription, None] = field(default_factory=dict)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _deltas: bool = False

    @property
    def key(self) -> str:
        return self.record.id

    def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._read_durable()))

    def stop(self) -> list[asyncio.Task[None]]:
        return self._tasks

    def encode(self, event: Event) -> Encoded:
        """`event` as its tenant sees it (under the tenant's id for the workspace), encoded."""
        return Encoded(event.seq, event.type, event_json(shown_event(event, self.record)))

    def encode_live(self, event: Event) -> Encoded:
        """`encode`, and framed for the sockets that take frames."""
        text = event_json(shown_event(event, self.record))
        return Encoded.framed(event.seq, event.type, text)

    def join(self, subscription: Subscription) -> None:
        if self.error is not None:
            subscription.fail()
            return
        self.live[subscription] = None
        if subscription.wants("delta") and not self._deltas:
            self._deltas = True
            self._tasks.append(asyncio.create_task(self._read_deltas()))

    def leave(self, subscription: Subscription) -> None:
        self.live.pop(subscription, None)

    async def publish(self, item: Encoded) -> None:
        """Hand `item` to every live subscriber that wants it; cut off those that cannot take
        it. Never waits for a subscriber: it lets the event loop run between slices of
        `PUBLISH_SLICE` subscribers, so 10,000 sockets do not stall the process's other work
        for the whole of one event."""
        if item.seq is not None:
            if item.seq <= self.position:
                return
            # From here a subscriber that joins has read `item` from the store in its replay;
            # the ones below were live before.
            self.position = item.seq
        live = list(self.live)
        for start in range(0, len(live), PUBLISH_SLICE):
            if start:
                await asyncio.sleep(0)
            for subscription in live[start : start + PUBLISH_SLICE]:
                if subscription.wants(item.type) and not subscription.offer(item):
                    self.live.pop(subscription, None)

    async def _read_durable(self) -> None:
        try:
            self.position = await self.store.head(self.key)
            self.ready.set()
            async for event in self.store.tail(self.key, self.position):
                await self.publish(self.encode_live(event))
            raise RuntimeError("the store's tail ended")
        except Exception as exc:
            self._fail(exc)

    async def _read_deltas(self) -> None:
        try:
            async for event in self.store.live(self.key):
                await self.publish(self.encode_live(event))
            raise RuntimeError("the store's live feed ended")
        except Exception as exc:
            self._fail(exc)

    def _fail(self, exc: Exception) -> None:
        log.warning("workspace event reader failed", workspace=self.key, error=repr(exc))
        self.error = exc
        self.ready.set()
        live, self.live = self.live, {}
        for subscription in live:
            subscription.fail()


class Fanout:
    """This process's dispatchers: one per workspace key that has subscribers."""

    def __init__(self, store: Callable[[], Store]) -> None:
        # A callable: the app's store is opened in its lifespan, after the app is built.
        self._store = store
        self._dispatchers: dict[str, Dispatcher] = {}
        self._stopping: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._dispatchers)

    @contextlib.asynccontextmanager
    async def subscribe(
        self,
        record: WorkspaceRecord,
        after: int,
        types: Sequence[str] | None,
        sink: FrameSink | None = None,
    ) -> AsyncIterator[Subscription]:
        """A subscription to `record`'s events after `after`, of `types` (None: every type,
        text deltas included), written straight to `sink` when it takes them; it leaves its
        dispatcher when the block ends."""
        dispatcher = self._dispatchers.get(record.id)
        if dispatcher is None or dispatcher.error is not None:
            dispatcher = self._dispatchers[record.id] = Dispatcher(self._store(), record)
            dispatcher.start()
        dispatcher.members += 1
        subscription = Subscription(dispatcher, after, types, sink)
        try:
            yield subscription
        finally:
            dispatcher.leave(subscription)
            dispatcher.members -= 1
            if dispatcher.members == 0:
                if self._dispatchers.get(record.id) is dispatcher:
                    del self._dispatchers[record.id]
                for task in dispatcher.stop():
                    self._stopping.add(task)  # held until it has ended
                    task.add_done_callback(self._stopping.discard)
                    _cancel_until_done(task)


def _cancel_until_done(task: asyncio.Task[None]) -> None:
    """Cancel `task` again every half second until it ends: Python 3.11's `wait_for` can
    swallow a cancellation (see docs/benchmarks.md, "Soak"), and a reader that missed it would
    hold its store tail forever."""
    if not task.done():
        task.cancel()
        asyncio.get_running_loop().call_later(0.5, _cancel_until_done, task)
