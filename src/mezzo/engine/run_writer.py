"""A run's folded state and the events a step folded into it that the store has not stored yet.

A step that needs no store round trip of its own (starting the run, a server-side tool's
result) folds its events at once and leaves them pending; the next store operation of the run
(the model call's hold, or any append) stores them first, in the same transaction. A worker
that dies before then loses them and the next worker does that step again.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

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

    @property
    def stored_version(self) -> int:
        """The run's version in the store: the state's without the pending events."""
        return self.state.version - len(self.pending)

    def defer(self, events: Sequence[NewEvent]) -> None:
        now = time.time()
        state = self.state
        fold(
            (
                Event(
                    seq=None,
                    workspace=state.workspace,
                    run=state.run,
                    type=e.type,
                    ts=now,
                    data=e.data,
                )
                for e in events
            ),
            state,
        )
        self.pending.extend(events)

    async def append(self, events: Sequence[NewEvent]) -> list[Event]:
        """Store the pending events and `events` (raises VersionConflict)."""
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
        state = self.state
        before = self.stored_version
        fold(stored[len(self.pending) :], state)
        if stored and stored[-1].seq is not None:
            state.last_seq = stored[-1].seq
        self.pending.clear()
        every = self.settings.snapshot_every
        await snapshot_if_due(self.store, state, before, every)
        if state.terminal and self.settings.retain_events is not None:
            # The run's final state outlives its events: reads fold from this snapshot.
            await write_snapshot(self.store, state)
            await self.store.trim(state.workspace, self.settings.retain_events)
