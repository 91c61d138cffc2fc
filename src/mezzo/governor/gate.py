"""One governed model call outside a run: admit → stream → commit, by the engine's rules.

The gateway serves OpenAI-shaped requests that are not runs, yet each call must pass the same
governor a run step passes: a budget hold of `input + max_output` (`hold_bounds`), the shared
GCRA limiter on the primary (`store.acquire`), the workspace throttle, the primary's circuit
breaker, priority routing to the fallback, and a commit of the reported usage with its budget
alerts. The gate shares the engine's breakers, learned limits, calibration and tokenizers, so a
provider that trips for the gateway is open for runs too, and the other way round.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mezzo.governor.budget import hold_bounds, output_allowance
from mezzo.governor.limits import CircuitBreaker, LearnedLimits, Limits, effective_limits
from mezzo.governor.limits import parse_rate_limit_headers as parse_headers
from mezzo.governor.router import PrimaryStatus, Reason, RouteDecision, RoutingError
from mezzo.governor.tokens import estimate_request
from mezzo.protocol import NewEvent
from mezzo.providers.base import Chunk, ModelRequest, ModelResponse, ProviderError, TextDelta
from mezzo.store.base import CommitResult, RateLimit

if TYPE_CHECKING:
    from mezzo.engine.step import Engine, WorkspaceRecord

# Longest a gateway call waits on the primary's rate limit before it is refused with a 429.
MAX_LIMIT_WAIT_S = 60.0


class BudgetExhausted(Exception):
    def __init__(self, needed: int, remaining: int, budget: int) -> None:
        super().__init__(
            f"token budget exhausted: this request needs {needed} tokens, "
            f"{remaining} of {budget} are left"
        )
        self.needed = needed
        self.remaining = remaining
        self.budget = budget


class RateLimited(Exception):
    def __init__(self, wait_s: float, key: str) -> None:
        super().__init__(f"{key} rate limit: retry in {wait_s:.1f} s")
        self.wait_s = wait_s
        self.key = key


@dataclass(slots=True)
class Admission:
    """A call the governor let through: where it goes, what it holds, what it may write."""

    workspace: str
    reservation_id: str
    reserved: bool
    granted: int
    counted: int
    estimate: int
    primary: str
    decision: RouteDecision
    max_output_tokens: int
    routed: dict[str, Any] | None = None
    output_tokens: int = 0
    settled: bool = field(default=False)

    @property
    def model_key(self) -> str:
        return f"{self.decision.provider}:{self.decision.model}"


class Gate:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.store = engine.store
        self.router = engine.router
        self.settings = engine.settings

    # ---- admission

    def count(self, request: ModelRequest, primary_provider: str) -> int:
        tokenizer = self.engine.tokenizer(primary_provider, request.model)
        return estimate_request(request, tokenizer)

    async def admit(
        self,
        record: WorkspaceRecord,
        route_name: str,
        priority: str,
        request: ModelRequest,
        reservation_id: str,
    ) -> Admission:
        """Hold the budget and take rate-limit capacity, waiting on the primary when the
        router says wait. Raises BudgetExhausted, RateLimited or RoutingError."""
        route = self.router.route(route_name)
        primary = route.primary
        counted = self.count(request, primary.provider)
        estimate = self.engine.calibration.scale(str(primary), counted)
        wanted_output = request.max_output_tokens or self.settings.max_output_tokens
        minimum, wanted = hold_bounds(estimate, wanted_output)
        reservation = await self.store.reserve(record.id, reservation_id, minimum, wanted)
        if reservation is None:
            ledger = await self.store.ledger_get(record.id)
            exhausted = BudgetExhausted(minimum, ledger.remaining, ledger.budget)
            await self._log(
                record.id,
                "budget_exhausted",
                needed=minimum,
                remaining=ledger.remaining,
                budget=ledger.budget,
            )
            if record.config.fallback_behavior != "downgrade":
                raise exhausted
            try:
                decision = self.router.decide(route_name, priority, PrimaryStatus(), downgrade=True)
            except RoutingError:  # no fallback to downgrade to
                raise exhausted from None
            return self._admitted(
                record,
                reservation_id,
                None,
                counted,
                estimate,
                str(primary),
                decision,
                wanted_output,
                "token budget exhausted",
            )
        try:
            decision = await self._choose(
                record, route_name, priority, hold_bounds(estimate, wanted_output)[1]
            )
        except BaseException:
            await self.store.release_reservation(record.id, reservation_id)
            raise
        return self._admitted(
            record,
            reservation_id,
            reservation.granted,
            counted,
            estimate,
            str(primary),
            decision,
            wanted_output,
            decision.detail,
        )

    def _admitted(
        self,
        record: WorkspaceRecord,
        reservation_id: str,
        granted: int | None,
        counted: int,
        estimate: int,
        primary: str,
        decision: RouteDecision,
        wanted_output: int,
        detail: str,
    ) -> Admission:
        routed = None
        if decision.is_fallback:
            routed = {
                "from_route": primary,
                "to_route": f"{decision.provider}:{decision.model}",
                "reason": decision.reason.value,
                "detail": detail,
            }
        return Admission(
            workspace=record.id,
            reservation_id=reservation_id,
            reserved=granted is not None,
            granted=granted or 0,
            counted=counted,
            estimate=estimate,
            primary=primary,
            decision=decision,
            max_output_tokens=(
                min(wanted_output, output_allowance(granted, estimate))
                if granted is not None
                else wanted_output
            ),
            routed=routed,
        )

    async def _choose(
        self, record: WorkspaceRecord, route_name: str, priority: str, paced: int
    ) -> RouteDecision:
        route = self.router.route(route_name)
        key = str(route.primary)
        waited = 0.0
        while True:
            decision = await self._try_route(record, route_name, priority, key, paced)
            if decision.is_fallback or decision.wait_s <= 0:
                return decision
            if waited + decision.wait_s > MAX_LIMIT_WAIT_S:
                raise RateLimited(decision.wait_s, key)
            await asyncio.sleep(decision.wait_s)
            waited += decision.wait_s

    async def _try_route(
        self, record: WorkspaceRecord, route_name: str, priority: str, key: str, paced: int
    ) -> RouteDecision:
        rpm, tpm = self._limits(key)
        if record.throttle_rate < 1.0 and tpm is not None:
            share = RateLimit(per_minute=tpm.per_minute * record.throttle_rate)
            wait = await self.store.acquire(f"throttle:{record.id}:{key}", 0, paced, (None, share))
            if wait > 0:  # the workspace's own pace: wait on the primary, never fall back
                route = self.router.route(route_name)
                return RouteDecision(
                    route_name, route.primary.provider, route.primary.model, Reason.PRIMARY, wait
                )
        breaker = self.breaker(key)
        decision = self.router.decide(route_name, priority, PrimaryStatus.observe(0.0, breaker))
        if decision.is_fallback:
            return decision
        if not breaker.allow():
            busy = PrimaryStatus(breaker_retry_in_s=max(1.0, breaker.retry_in()))
            return self.router.decide(route_name, priority, busy)
        wait = await self.store.acquire(f"provider:{key}", 1, paced, (rpm, tpm))
        if wait > 0:
            return self.router.decide(route_name, priority, PrimaryStatus(wait_s=wait))
        return decision

    def _limits(self, key: str) -> tuple[RateLimit | None, RateLimit | None]:
        configured = self.settings.provider_limits.get(key)
        base = Limits(rpm=configured.rpm, tpm=configured.tpm) if configured else Limits()
        limits = effective_limits(base, self.engine.learned.get(key), time.time())
        return (
            RateLimit(per_minute=limits.rpm) if limits.rpm else None,
            RateLimit(per_minute=limits.tpm) if limits.tpm else None,
        )

    def breaker(self, key: str) -> CircuitBreaker:
        breakers = self.engine.breakers
        if key not in breakers:
            breakers[key] = CircuitBreaker()
        return breakers[key]

    # ---- the call

    async def stream(
        self,
        admission: Admission,
        request: ModelRequest,
        via: Callable[[ModelRequest], AsyncIterator[Chunk]] | None = None,
    ) -> AsyncIterator[Chunk]:
        """The provider's chunks for the admitted route (or `via`'s, a caller's own connection
        to that provider); counts output for a cut-off call and feeds the breaker, the learned
        limits and the calibration."""
        decision = admission.decision
        stream = via or self.engine.providers.get(decision.provider).stream
        routed = ModelRequest(
            model=decision.model,
            messages=request.messages,
            tools=request.tools,
            max_output_tokens=admission.max_output_tokens,
            temperature=request.temperature,
            tool_choice=request.tool_choice,
            response_schema=request.response_schema,
        )
        key = admission.model_key
        try:
            async for chunk in stream(routed):
                if isinstance(chunk, TextDelta):
                    admission.output_tokens += 1
                elif isinstance(chunk, ModelResponse):
                    self.breaker(key).record(None)
                    self._learn(key, chunk.headers)
                    if chunk.usage is not None and decision.reason is Reason.PRIMARY:
                        self.engine.calibration.observe(
                            admission.primary, admission.counted, chunk.usage.input_tokens
                        )
                yield chunk
        except ProviderError as error:
            self.breaker(key).record(error)
            if error.status == 429:
                wait = error.retry_after if error.retry_after is not None else 1.0
                await self.store.block_until(f"provider:{key}", time.time() + wait)
            raise

    def _learn(self, key: str, headers: dict[str, str]) -> None:
        if headers:
            now = time.time()
            learned = self.engine.learned.get(key, LearnedLimits())
            self.engine.learned[key] = learned.learn(parse_headers(headers, now), now)

    # ---- settling: exactly once per admission

    async def commit(
        self, admission: Admission, actual: int, thresholds: Sequence[float]
    ) -> CommitResult | None:
        """Charge `actual` tokens (idempotent per reservation) and append the alerts crossed."""
        if admission.settled or not admission.reserved:
            admission.settled = True
            return None
        admission.settled = True
        result = await self.store.commit(
            admission.workspace, admission.reservation_id, actual, thresholds
        )
        if result.thresholds_crossed:
            events = [
                NewEvent(
                    type="budget_alert",
                    data={"threshold": t, "used": result.committed, "budget": result.budget},
                )
                for t in result.thresholds_crossed
            ]
            await self.store.append(admission.workspace, None, events, None)
        return result

    async def commit_partial(self, admission: Admission, thresholds: Sequence[float]) -> None:
        """A call cut off midway (cancelled, client gone): the input plus what streamed."""
        await self.commit(admission, admission.estimate + admission.output_tokens, thresholds)

    async def release(self, admission: Admission) -> None:
        """A call that failed upstream: nothing was served, nothing is charged."""
        if not admission.settled and admission.reserved:
            await self.store.release_reservation(admission.workspace, admission.reservation_id)
        admission.settled = True

    async def log_routed(self, admission: Admission) -> None:
        if admission.routed is not None:
            await self._log(admission.workspace, "routed", **admission.routed)

    async def _log(self, workspace: str, kind: str, **data: Any) -> None:
        await self.store.append(workspace, None, [NewEvent(type=kind, data=data)], None)


__all__ = [
    "Admission",
    "BudgetExhausted",
    "Gate",
    "RateLimited",
    "Reason",
    "RoutingError",
]
