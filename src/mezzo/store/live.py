"""In-process fan-out of live-only events (text deltas) to subscribers of a workspace."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator

from mezzo.protocol import Event


class LiveHub:
    """Each subscriber gets a bounded queue; a slow one loses deltas, never blocks the writer."""

    def __init__(self, maxsize: int = 1024) -> None:
        self._maxsize = maxsize
        self._subscribers: dict[str, set[asyncio.Queue[Event]]] = defaultdict(set)

    def publish(self, event: Event) -> None:
        for queue in self._subscribers.get(event.workspace, ()):
            if queue.full():
                continue
            queue.put_nowait(event)

    async def subscribe(self, workspace: str) -> AsyncIterator[Event]:
        queue: asyncio.Queue[Event] = asyncio.Queue(self._maxsize)
        self._subscribers[workspace].add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._subscribers[workspace].discard(queue)
            if not self._subscribers[workspace]:
                del self._subscribers[workspace]
