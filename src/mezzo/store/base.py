"""The store contract: event log, queue, key-value, token ledger and rate limiter.

Every backend (SQLite, Redis) implements `Store` and passes the same conformance suite in
`tests/store/test_conformance.py`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from mezzo.protocol import Event, NewEvent


class StoreError(Exception):
    """Base class of errors a store raises on purpose."""


class VersionConflict(StoreError):
    """The run's version is not what the writer expected: someone else appended first."""

    def __init__(self, run: str, expected: int, actual: int) -> None:
        super().__init__(f"run {run}: expected version {expected}, found {actual}")
        self.run = run
        self.expected = expected
        self.actual = actual


class LeaseLost(StoreError):
    """The job's lease lapsed or was taken by another worker; the holder must stop."""


class StoreUnavailable(StoreError):
    """The backing server cannot be reached; callers answer 503 and retry later."""


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    queue: str
    payload: dict[str, Any]
    priority: int
    attempts: int
    max_attempts: int
    token: int
    lease_until: float
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class NewJob:
    """A job to enqueue together with an append (`Store.append(..., enqueue=...)`)."""

    queue: str
    id: str
    payload: dict[str, Any]
    priority: int = 0
    max_attempts: int = 5


@dataclass(frozen=True, slots=True)
class DeadJob:
    id: str
    queue: str
    payload: dict[str, Any]
    attempts: int
    last_error: str | None
    failed_at: float


@dataclass(slots=True)
class LedgerState:
    budget: int
    committed: int
    reserved: int
    alerts_fired: list[float] = field(default_factory=list)

    @property
    def remaining(self) -> int:
        """What no call holds or has spent: what a new hold can take right now."""
        return self.budget - self.committed - self.reserved

    @property
    def unspent(self) -> int:
        """What is not spent: `remaining` plus what in-flight calls hold."""
        return self.budget - self.committed


@dataclass(frozen=True, slots=True)
class Hold:
    """Hold exactly `tokens` of a workspace's budget under `id`, all or nothing.

    A hold that does not fit beside the others waits in line: the ledger remembers it (by
    `priority`, highest first, then by when it first asked) for `WAITER_TTL_S` after its last
    try, and a later hold may not take what one ahead of it in line is waiting for. A hold
    not settled within `ttl_s` is released by the next hold on the workspace (its holder died).
    """

    id: str
    tokens: int
    minimum: int
    priority: int = 1
    ttl_s: float = 900.0


WAITER_TTL_S = 10.0


@dataclass(frozen=True, slots=True)
class HoldResult:
    """`granted` is the hold's tokens when it was taken (or was already held), 0 when not;
    `ledger` is the ledger after the call; `events` were appended with the hold."""

    granted: int
    ledger: LedgerState
    events: list[Event] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class CommitResult:
    committed: int
    budget: int
    charged: int
    already_committed: bool
    thresholds_crossed: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class Settlement:
    """A settled hold and the events appended with it; `conflict` when the run had moved on
    (the usage is charged all the same: the tokens were spent)."""

    commit: CommitResult
    events: list[Event] = field(default_factory=list)
    conflict: bool = False


@dataclass(frozen=True, slots=True)
class RateLimit:
    """`per_minute` units in a window of 60 s, admitting bursts up to `burst` units."""

    per_minute: float
    burst: float | None = None


class Store(Protocol):
    # ---- lifecycle
    async def open(self) -> None: ...
    async def close(self) -> None: ...

    async def wait_for_change(self, within: float) -> None:
        """Return when something in the store may have changed (a new job, a new event), or
        after `timeout` seconds. Workers wait here when idle instead of polling hot."""
        ...

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
        """Append atomically. `expected_version` is the run's count of events (None: no check).

        Returns the stored events with their seq. Raises VersionConflict and stores nothing
        when the run has moved on. `enqueue` is a job to add once the events are stored (the
        events and the job commit together where the backend can; where it cannot, the job
        follows the events in the same round trip). `durable=False` marks a write the caller
        does not acknowledge to anyone: a backend may make it durable a moment later
        (`docs/operations.md`, durability).

        The store keeps an index of runs: the workspace of each, and which have not ended (a
        `completed`, `failed` or `cancelled` event ends a run).
        """
        ...

    async def read(
        self,
        workspace: str,
        after_seq: int = 0,
        types: Sequence[str] | None = None,
        limit: int = 1000,
        run: str | None = None,
    ) -> list[Event]: ...

    def tail(
        self,
        workspace: str,
        after_seq: int = 0,
        types: Sequence[str] | None = None,
        run: str | None = None,
    ) -> AsyncIterator[Event]:
        """Every event after `after_seq`, then block for new ones, forever."""
        ...

    async def trim(self, workspace: str, keep: int = 10_000) -> int:
        """Retention: drop events older than the newest `keep`, but none at or after the first
        event of a run that has not ended. Returns how many went; seqs are never reused."""
        ...

    async def head(self, workspace: str) -> int: ...
    async def run_version(self, run: str) -> int: ...
    async def run_workspace(self, run: str) -> str | None:
        """The workspace a run was appended to, None for a run never seen."""
        ...

    async def active_runs(
        self, limit: int = 1000, workspace: str | None = None
    ) -> list[tuple[str, str]]:
        """`(run, workspace)` of runs that have events and have not ended, at most `limit`;
        only those of `workspace` when given (an indexed read, not a scan of every run)."""
        ...

    # ---- live-only events (not stored, no seq)
    async def publish_live(self, event: Event) -> None: ...
    def live(self, workspace: str) -> AsyncIterator[Event]: ...

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
        """Add a job, unique by `job_id`. A job already waiting keeps its place (earliest
        not_before, highest priority wins); a job leased right now is run once more after
        its holder acks. Returns True when a new job was created."""
        ...

    async def lease(self, queue: str, worker: str, n: int, lease_s: float) -> list[Job]: ...
    async def extend(self, job: Job, lease_s: float) -> Job: ...
    async def ack(self, job: Job) -> None: ...
    async def retry(self, job: Job, delay_s: float, error: str) -> bool:
        """Give the job back to run again after `delay_s`, or dead-letter it when its attempts
        are spent. Returns False when it was dead-lettered."""
        ...

    async def release(self, job: Job, delay_s: float = 0.0) -> None:
        """Give the job back without counting an attempt (shutdown, rate limit wait)."""
        ...

    async def queue_depth(self, queue: str) -> dict[int, int]: ...
    async def queue_oldest(self, queue: str) -> dict[int, float]:
        """Per priority, since when the oldest job that is due but not leased has waited
        (its not-before time). Priorities with nothing waiting are absent."""
        ...

    async def dead_letters(self, queue: str, limit: int = 100) -> list[DeadJob]: ...
    async def requeue_dead(self, queue: str, job_id: str) -> bool: ...

    # ---- key-value
    async def kv_get(self, key: str) -> dict[str, Any] | None: ...
    async def kv_put(self, key: str, value: dict[str, Any]) -> None: ...
    async def kv_put_if_absent(self, key: str, value: dict[str, Any]) -> bool: ...
    async def kv_delete(self, key: str) -> bool: ...
    async def kv_scan(self, prefix: str, limit: int = 1000) -> list[tuple[str, dict[str, Any]]]: ...

    # ---- token ledger
    async def ledger_init(self, workspace: str, budget: int) -> None:
        """Create the workspace's ledger once; a second call changes nothing."""
        ...

    async def ledger_get(self, workspace: str) -> LedgerState: ...
    async def ledger_add(self, workspace: str, tokens: int) -> LedgerState: ...
    async def hold(
        self,
        workspace: str,
        hold: Hold,
        *,
        run: str | None = None,
        events: Sequence[NewEvent] = (),
        expected_version: int | None = None,
    ) -> HoldResult:
        """Take `hold` and append `events` (to `run`, checked against `expected_version`),
        both or neither. Taking an id that is already held grants it again.

        Not granted when the unspent budget is below `hold.minimum` or below `hold.tokens`, or
        when the tokens are held by other calls or waited for by holds ahead in line (then this
        hold joins the line). Raises VersionConflict, holding nothing, when the run has moved
        on; KeyError without a ledger.
        """
        ...

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
        """Charge `actual` (never past the budget), release the rest of the hold, and append
        `events` when the run is still at `expected_version`. Idempotent per hold: a second
        settle charges nothing. Reports the alert thresholds crossed for the first time."""
        ...

    async def release_reservation(self, workspace: str, hold_id: str) -> None:
        """Give an open hold back uncharged, or take a hold that waits out of the line;
        anything else changes nothing."""
        ...

    # ---- shared rate limiter (GCRA)
    async def acquire(
        self,
        key: str,
        requests: int,
        tokens: int,
        limits: tuple[RateLimit | None, RateLimit | None],
    ) -> float:
        """Take `requests` and `tokens` from the key's (RPM, TPM) limits. Returns 0 when taken,
        else the seconds to wait before trying again (nothing taken). Negative amounts give
        capacity back (a call that used fewer tokens than it was paced for)."""
        ...

    async def block_until(self, key: str, until: float) -> None:
        """Nobody may acquire on `key` before `until` (a provider's retry-after)."""
        ...
