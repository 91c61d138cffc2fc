"""The governor: every model call passes here, a run's model step and a gateway request alike.

    admit(call, log)   → Admission | Wait | Exhausted     count, route, pace, hold the budget
    observe(admission, response)                         breaker, learned limits, calibration
    settle(admission, tokens, log)                       charge, release the rest, refund pacing
    failed(admission, error)                             breaker, a 429's retry-after

The governor owns everything about admitting a call: token counting and its calibration, the
budget hold (`budget.py`), the workspace throttle, configured and learned provider limits, the
circuit breakers, the routing decision (`router.py`) and pacing refunds. Callers hold none of
its state; they say where the call's events go (`RunLog`: a run, checked against its version;
None: the workspace's log) and append the events a `Wait` or an `Exhausted` carries.

Cost: an admission is one store operation (the hold, with the call's events), a settlement one
(the charge, with the result's events); the limiter adds one only where a limit is known, and
a crossed alert threshold one. Breakers, learned limits and calibration live in the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from mezzo import keys
from mezzo.config import Settings
from mezzo.governor import budget
from mezzo.governor.calibration import InputCalibration
from mezzo.governor.limits import (
    CircuitBreaker,
    LearnedLimits,
    Limits,
    effective_limits,
    parse_rate_limit_headers,
)
from mezzo.governor.router import (
    PrimaryStatus,
    Reason,
    Route,
    RouteDecision,
    Router,
    RoutingError,
    priority_rank,
)
from mezzo.governor.throttle import effective_tpm
from mezzo.governor.tokens import Tokenizer, estimate_request
from mezzo.protocol import Event, ModelCallData, NewEvent
from mezzo.providers.base import (
    Chunk,
    ModelRequest,
    ModelResponse,
    ProviderError,
    TextDelta,
    Usage,
)
from mezzo.store.base import Hold, RateLimit, Store, VersionConflict
from mezzo.workspaces import WorkspaceRecord

# How long a budget hold lasts when its holder never settles it (the process died).
HOLD_TTL_S = 900.0
# How long this process trusts what it knows of a key's retry-after block.
BLOCK_CHECK_S = 1.0
# First wait of a call that waits for other calls' holds; it doubles up to the maximum.
BUDGET_WAIT_S = (0.05, 1.0)


@dataclass(frozen=True, slots=True)
class Call:
    """One model call to admit: whose budget, what it asks, which route, how urgent."""

    workspace: WorkspaceRecord
    request: ModelRequest
    route: str
    priority: str
    hold_id: str
    # The run was moved to the fallback route when its budget ran out: no hold, no pacing.
    downgraded: bool = False
    # How many times this call has waited for budget already (sets the next wait).
    waits: int = 0


@dataclass(frozen=True, slots=True)
class RunLog:
    """Where a run's call writes: `before` and the call's own events, checked against the
    run's `version`."""

    run: str
    version: int
    step: int
    before: Sequence[NewEvent] = ()


@dataclass(slots=True)
class Admission:
    """A call the governor let through: where it goes, what it holds, what it may write."""

    call: Call
    decision: RouteDecision
    primary: str
    counted: int
    estimate: int
    held: int
    max_output_tokens: int
    paced: int = 0
    events: list[Event] = field(default_factory=list)
    output_tokens: int = 0
    settled: bool = False

    @property
    def workspace(self) -> str:
        return self.call.workspace.id

    @property
    def model_key(self) -> str:
        return f"{self.decision.provider}:{self.decision.model}"

    @property
    def routed(self) -> bool:
        return self.decision.is_fallback

    def request(self) -> ModelRequest:
        """The call's request as the chosen model is to receive it (every other field as
        the caller asked)."""
        return replace(
            self.call.request, model=self.decision.model, max_output_tokens=self.max_output_tokens
        )

    def usage(self, response: ModelResponse | None) -> Usage:
        """What the call used: the provider's report, else the estimate and what streamed."""
        if response is not None and response.usage is not None:
            return response.usage
        return Usage(self.estimate, self.output_tokens)


@dataclass(frozen=True, slots=True)
class Wait:
    """Not now: try again in `seconds`. `event` says why (`rate_limited`, `budget_wait`)."""

    seconds: float
    reason: str
    event: NewEvent


@dataclass(frozen=True, slots=True)
class Exhausted:
    """The budget is spent: the workspace's `fallback_behavior` (suspend or fail) applies."""

    needed: int
    unspent: int
    budget: int
    behavior: str

    @property
    def event(self) -> NewEvent:
        return NewEvent(
            type="budget_exhausted",
            data={"needed": self.needed, "remaining": self.unspent, "budget": self.budget},
        )

    @property
    def message(self) -> str:
        return (
            f"token budget exhausted: the call needs {self.needed} tokens, "
            f"{self.unspent} of {self.budget} are left"
        )


Admitted = Admission | Wait | Exhausted


class Governor:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        router: Router,
        tokenizer: Callable[[str, str], Tokenizer | None],
        output_cap: Callable[[str], int | None] = lambda provider: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.settings = settings
        self.router = router
        self.tokenizer = tokenizer
        self.output_cap = output_cap
        self.clock = clock
        self.calibration = InputCalibration()
        self.breakers: dict[str, CircuitBreaker] = {}
        self.learned: dict[str, LearnedLimits] = {}
        self._blocks: dict[str, tuple[float, float]] = {}
        self._freed: dict[str, asyncio.Event] = {}

    # ---- counting

    def count(self, request: ModelRequest, route: Route) -> int:
        """The request's input tokens as the route's primary model counts them."""
        primary = route.primary
        return estimate_request(request, self.tokenizer(primary.provider, primary.model))

    # ---- admission

    async def admit(self, call: Call, log: RunLog | None = None) -> Admitted:
        """Route and pace the call, then hold its budget and append its events in one store
        operation. Raises VersionConflict (the run moved on) and RoutingError."""
        route = self.router.route(call.route)
        counted = self.count(call.request, route)
        estimate = self.calibration.scale(str(route.primary), counted)
        wanted_output = call.request.max_output_tokens or self.settings.max_output_tokens
        cap = self.output_cap(route.primary.provider)
        if cap is not None:
            wanted_output = min(wanted_output, cap)
        minimum, wanted = budget.hold_bounds(estimate, wanted_output)
        admission = Admission(
            call=call,
            decision=_primary(route),
            primary=str(route.primary),
            counted=counted,
            estimate=estimate,
            held=0,
            max_output_tokens=wanted_output,
        )
        if call.downgraded:
            admission.decision = self.router.decide(
                call.route, call.priority, PrimaryStatus(), downgrade=True
            )
            return await self._record(admission, log, routed=False)
        routed = await self._route(call, route, wanted)
        if isinstance(routed, Wait):
            return routed
        admission.decision = routed
        if routed.reason is Reason.PRIMARY:
            admission.paced = wanted if self._limits(str(route.primary)).tpm else 0
        tokens = wanted
        for _ in range(3):
            admission.max_output_tokens = min(
                wanted_output, budget.output_allowance(tokens, estimate)
            )
            hold = Hold(call.hold_id, tokens, minimum, priority_rank(call.priority), HOLD_TTL_S)
            result = await self.store.hold(
                call.workspace.id,
                hold,
                run=log.run if log else None,
                events=self._events(admission, log, tokens),
                expected_version=log.version if log else None,
            )
            if result.granted:
                admission.held = result.granted
                admission.max_output_tokens = min(
                    wanted_output, budget.output_allowance(result.granted, estimate)
                )
                admission.events = result.events
                return admission
            refused = budget.refusal(result.ledger, tokens, minimum)
            if isinstance(refused, budget.AskLess):
                tokens = refused.tokens
                continue
            await self._refund_pacing(admission, admission.paced)
            if isinstance(refused, budget.Exhausted):
                return await self._exhausted(admission, refused, log)
            return self._budget_wait(call, refused)
        return self._budget_wait(call, budget.HeldByOthers(tokens, 0, 0))

    def _events(self, admission: Admission, log: RunLog | None, held: int) -> list[NewEvent]:
        events: list[NewEvent] = list(log.before) if log is not None else []
        if admission.decision.is_fallback:
            events.append(self._routed_event(admission))
        if log is not None:
            call = ModelCallData(
                step=log.step,
                route=admission.call.route,
                provider=admission.decision.provider,
                model=admission.decision.model,
                reservation=admission.call.hold_id if held else "",
                reserved_tokens=held,
                estimated_input_tokens=admission.estimate,
                max_output_tokens=admission.max_output_tokens,
            )
            events.append(NewEvent(type="model_call", data=call.model_dump()))
        return events

    def _routed_event(self, admission: Admission) -> NewEvent:
        decision = admission.decision
        return NewEvent(
            type="routed",
            data={
                "from_route": admission.primary,
                "to_route": f"{decision.provider}:{decision.model}",
                "reason": decision.reason.value,
                "detail": decision.detail,
            },
        )

    async def _record(self, admission: Admission, log: RunLog | None, *, routed: bool) -> Admission:
        """An admission without a hold: append its events on their own."""
        events = self._events(admission, log, 0)
        if not routed:
            events = [e for e in events if e.type != "routed"]
        if events:
            admission.events = await self.store.append(
                admission.workspace,
                log.run if log else None,
                events,
                log.version if log else None,
                durable=False,
            )
        return admission

    async def _exhausted(
        self, admission: Admission, spent: budget.Exhausted, log: RunLog | None
    ) -> Admitted:
        call = admission.call
        behavior = call.workspace.config.fallback_behavior
        exhausted = Exhausted(spent.needed, spent.unspent, spent.budget, behavior)
        if behavior != "downgrade":
            return exhausted
        try:
            admission.decision = self.router.decide(
                call.route, call.priority, PrimaryStatus(), downgrade=True
            )
        except RoutingError:  # no fallback to downgrade to
            return Exhausted(spent.needed, spent.unspent, spent.budget, "fail")
        admission.decision = replace(admission.decision, detail="token budget exhausted")
        admission.paced = 0
        admission.max_output_tokens = call.request.max_output_tokens or (
            self.settings.max_output_tokens
        )
        before = [*log.before, exhausted.event] if log is not None else [exhausted.event]
        relog = RunLog(log.run, log.version, log.step, before) if log is not None else None
        if relog is None:
            await self.store.append(call.workspace.id, None, [exhausted.event], None)
        return await self._record(admission, relog, routed=True)

    def _budget_wait(self, call: Call, held: budget.HeldByOthers) -> Wait:
        first, longest = BUDGET_WAIT_S
        seconds = min(longest, first * 2**call.waits)
        return Wait(
            seconds,
            "budget",
            NewEvent(
                type="budget_wait",
                data={"needed": held.needed, "free": held.free, "held": held.held},
            ),
        )

    async def wait_for_budget(self, workspace: str, within: float) -> None:
        """Return when a hold of the workspace was settled in this process, or after `within` s
        (holds settled by other processes are seen by trying again)."""
        freed = self._freed.get(workspace)
        if freed is None:
            if len(self._freed) > 10_000:
                self._freed.clear()
            freed = self._freed[workspace] = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(freed.wait(), within)

    async def abandon(self, call: Call) -> None:
        """A call that gives up waiting: out of the line, so it holds up no one behind it."""
        await self.store.release_reservation(call.workspace.id, call.hold_id)

    def _budget_freed(self, workspace: str) -> None:
        freed = self._freed.pop(workspace, None)
        if freed is not None:
            freed.set()

    # ---- routing and pacing

    async def _route(self, call: Call, route: Route, paced: int) -> RouteDecision | Wait:
        """Primary or fallback, taking rate-limit capacity on the primary when it is chosen."""
        key = str(route.primary)
        limits = self._limits(key)
        share = effective_tpm(limits.tpm, call.workspace.throttle_rate)
        if call.workspace.throttle_rate < 1.0 and share is not None:
            wait = await self.store.acquire(
                keys.throttle_limit(call.workspace.id, key), 0, paced, (None, RateLimit(share))
            )
            if wait > 0:  # the workspace's own pace: wait on the primary, never fall back
                return _rate_limited(wait, "throttle")
        breaker = self.breaker(key)
        decision = self.router.decide(call.route, call.priority, PrimaryStatus.observe(0, breaker))
        if decision.is_fallback:
            return decision
        if not breaker.allow():
            # Half-open and another call holds the probe: treat the breaker as open.
            busy = PrimaryStatus(breaker_retry_in_s=max(1.0, breaker.retry_in()))
            decision = self.router.decide(call.route, call.priority, busy)
            return decision if decision.is_fallback else _rate_limited(decision.wait_s, key)
        if limits.rpm or limits.tpm:
            wait = await self.store.acquire(
                keys.provider_limit(key),
                1,
                paced,
                (_per_minute(limits.rpm), _per_minute(limits.tpm)),
            )
        else:
            wait = await self._blocked(key)
        if wait > 0:
            decision = self.router.decide(call.route, call.priority, PrimaryStatus(wait_s=wait))
            if not decision.is_fallback:
                return _rate_limited(decision.wait_s, key)
        return decision

    def _limits(self, key: str) -> Limits:
        configured = self.settings.provider_limits.get(key)
        base = Limits(rpm=configured.rpm, tpm=configured.tpm) if configured else Limits()
        return effective_limits(base, self.learned.get(key), self.clock())

    async def _blocked(self, key: str) -> float:
        """Seconds a provider's retry-after still blocks `key` (any process may have heard it);
        the store is asked at most once per `BLOCK_CHECK_S` per key."""
        now = self.clock()
        until, checked = self._blocks.get(key, (0.0, 0.0))
        if now - checked >= BLOCK_CHECK_S:
            wait = await self.store.acquire(keys.provider_limit(key), 0, 0, (None, None))
            until = max(until, now + wait) if wait > 0 else until
            self._blocks[key] = (until, now)
        return max(0.0, until - now)

    def breaker(self, key: str) -> CircuitBreaker:
        breaker = self.breakers.get(key)
        if breaker is None:
            breaker = self.breakers[key] = CircuitBreaker()
        return breaker

    # ---- outcome

    def observe(self, admission: Admission, response: ModelResponse) -> None:
        """A call that answered: the breaker, the announced limits, the input calibration."""
        key = admission.model_key
        self.breaker(key).record(None)
        if response.headers:
            now = self.clock()
            learned = self.learned.get(key, LearnedLimits())
            self.learned[key] = learned.learn(parse_rate_limit_headers(response.headers, now), now)
        if response.usage is not None and admission.decision.reason is Reason.PRIMARY:
            self.calibration.observe(
                admission.primary, admission.counted, response.usage.input_tokens
            )

    async def watch(
        self, admission: Admission, chunks: AsyncIterator[Chunk]
    ) -> AsyncIterator[Chunk]:
        """A provider's chunks for the admission, passed on as they come: the output is counted
        (what a call cut off midway is charged for) and the outcome observed."""
        try:
            async for chunk in chunks:
                if isinstance(chunk, TextDelta):
                    admission.output_tokens += 1
                elif isinstance(chunk, ModelResponse):
                    self.observe(admission, chunk)
                yield chunk
        except ProviderError as error:
            await self.failed(admission, error)
            raise

    async def failed(self, admission: Admission, error: ProviderError) -> float | None:
        """A call the provider refused or failed: feeds the breaker; a 429 blocks the key for
        everyone until its retry-after. Returns that wait for a 429, else None."""
        key = admission.model_key
        self.breaker(key).record(error)
        if error.status != 429:
            return None
        wait = error.retry_after if error.retry_after is not None else 1.0
        until = self.clock() + wait
        self._blocks[key] = (until, self.clock())
        await self.store.block_until(keys.provider_limit(key), until)
        return wait

    async def settle(
        self,
        admission: Admission,
        tokens: int,
        log: RunLog | None = None,
        events: Sequence[NewEvent] = (),
    ) -> list[Event]:
        """Charge `tokens` (once per admission), release the rest of the hold and append
        `events` in one store operation; append the budget alerts the charge crossed. Returns
        the events appended. Raises VersionConflict when the run moved on: the tokens are
        charged all the same (they were spent), the events are not appended."""
        record = admission.call.workspace
        run, version = (log.run, log.version) if log is not None else (None, None)
        if admission.settled or not admission.held:
            admission.settled = True
            if not events:
                return []
            return await self.store.append(record.id, run, events, version, durable=False)
        admission.settled = True
        settlement = await self.store.settle(
            record.id,
            admission.call.hold_id,
            tokens,
            record.config.alert_thresholds,
            run=run,
            events=events,
            expected_version=version,
        )
        self._budget_freed(record.id)
        commit = settlement.commit
        if commit.thresholds_crossed:
            alerts = [
                NewEvent(
                    type="budget_alert",
                    data={"threshold": t, "used": commit.committed, "budget": commit.budget},
                )
                for t in commit.thresholds_crossed
            ]
            await self.store.append(record.id, None, alerts, None)
        await self._refund_pacing(admission, admission.paced - tokens)
        if settlement.conflict:
            assert run is not None and version is not None
            raise VersionConflict(run, version, -1)
        return settlement.events

    async def _refund_pacing(self, admission: Admission, unused: int) -> None:
        """Give back the rate-limit capacity a call was paced for but did not use."""
        if unused <= 0 or not admission.paced:
            return
        key = admission.model_key
        tpm = self._limits(key).tpm
        if not tpm:
            return
        await self.store.acquire(keys.provider_limit(key), 0, -unused, (None, RateLimit(tpm)))
        throttle = admission.call.workspace.throttle_rate
        share = effective_tpm(tpm, throttle)
        if throttle < 1.0 and share is not None:
            await self.store.acquire(
                keys.throttle_limit(admission.workspace, key),
                0,
                -unused,
                (None, RateLimit(share)),
            )

    def state(self) -> dict[str, Any]:
        """What the process knows of each provider key: breaker state, learned limits."""
        now = self.clock()
        keys = sorted(set(self.breakers) | set(self.learned))
        return {
            key: {
                "breaker": self.breaker(key).state.value,
                "limits": _limits_view(self._limits(key)),
                "blocked_s": max(0.0, self._blocks.get(key, (0.0, 0.0))[0] - now),
            }
            for key in keys
        }


def _primary(route: Route) -> RouteDecision:
    return RouteDecision(route.name, route.primary.provider, route.primary.model, Reason.PRIMARY, 0)


def _per_minute(value: float | None) -> RateLimit | None:
    return RateLimit(per_minute=value) if value else None


def _rate_limited(wait: float, key: str) -> Wait:
    return Wait(
        wait, "rate_limit", NewEvent(type="rate_limited", data={"wait_s": wait, "key": key})
    )


def _limits_view(limits: Limits) -> dict[str, float | None]:
    return {"rpm": limits.rpm, "tpm": limits.tpm}
