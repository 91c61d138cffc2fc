"""A run's folded state, the events folded into it that the store has not stored yet, and the
one store operation that may still be on its way.

A step that needs no store round trip of its own (starting the run, a server-side tool's
result) folds its events at once and leaves them pending; the next store operation of the run
(the model call's hold, or any append) stores them first, in the same transaction. A worker
that dies before then loses them and the next worker does that step again.

A model call's settlement is sent without waiting for it (`send`): its events are folded at
once and the next step (running a tool, building the next request) overlaps the round trip.
Every later store operation of the run waits for it first (`landed`), so a conflict (the run
was cancelled meanwhile) still stops the run before anything else of it is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Iterable, Sequence

from mezzo.config import Settings
from mezzo.engine.snapshot import snapshot_if_due, write_snapshot
from mezzo.engine.state import RunState, fold
from mezzo.protocol import Event, NewEvent
from mezzo.store.base import Store


class RunWriter:
    def __init__(self, store: Store, settings: Settings, state: RunState) -> None:
        self.store = store
        self.settings = settings
        self.state = state
        self.pending: list[NewEvent] = []
        self._sending: asyncio.Task[list[Event]] | None = None
        self._sent_from = 0

    @property
    def stored_version(self) -> int:
        """The run's version in the store once what is sent has landed: the state's without
        the pending events."""
        return self.state.version - len(self.pending)

    def defer(self, events: Sequence[NewEvent]) -> None:
        _fold_unstored(self.state, events)
        self.pending.extend(events)

    def send(self, operation: Awaitable[list[Event]], events: Sequence[NewEvent]) -> None:
        """`operation` stores `events` (and no pending ones); fold them now, land it later."""
        assert self._sending is None and not self.pending
        self._sent_from = self.state.version
        _fold_unstored(self.state, events)
        self._sending = asyncio.ensure_future(operation)

    async def landed(self) -> None:
        """Wait for what was sent (raises VersionConflict when it found the run moved on)."""
        sending, self._sending = self._sending, None
        if sending is not None:
            stored = await sending
            await self._after(stored, self._sent_from)

    async def close(self) -> None:
        """Let what was sent land, whatever becomes of it: nobody is left to act on it."""
        with contextlib.suppress(Exception):
            await self.landed()

    async def append(self, events: Sequence[NewEvent]) -> list[Event]:
        """Store the pending events and `events` (raises VersionConflict)."""
        await self.landed()
        stored = await self.store.append(
            self.state.workspace,
            self.state.run,
            [*self.pending, *events],
            self.stored_version,
            durable=False,
        )
        await self.took(stored)
        return stored

    async def took(self, stored: Sequence[Event]) -> None:
        """The store stored the pending events and then others: fold those others."""
        before = self.stored_version
        fold(stored[len(self.pending) :], self.state)
        self.pending.clear()
        await self._after(stored, before)

    async def _after(self, stored: Sequence[Event], before: int) -> None:
        state = self.state
        if stored and stored[-1].seq is not None:
            state.last_seq = stored[-1].seq
        every = self.settings.snapshot_every
        await snapshot_if_due(self.store, state, before, every)
        if state.terminal and self.settings.retain_events is not None:
            # The run's final state outlives its events: reads fold from this snapshot.
            await write_snapshot(self.store, state)
            await self.store.trim(state.workspace, self.settings.retain_events)


def _fold_unstored(state: RunState, events: Iterable[NewEvent]) -> None:
    now = time.time()
    fold(
        (
            Event(
                seq=None, workspace=state.workspace, run=state.run, type=e.type, ts=now, data=e.data
            )
            for e in events
        ),
        state,
    )
