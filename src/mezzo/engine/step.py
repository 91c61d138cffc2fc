"""Carry out the decided steps of a run: model calls through the governor, server-side tools.

`Engine.advance` loads a run, folds it, and loops decide → do → append until the run must wait
or ends. Every append names the run version it was decided on, so a worker that lost its lease
(or raced a cancel) gets a conflict, re-folds, and never doubles an effect in the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog

from mezzo import tracing
from mezzo.config import Settings
from mezzo.engine.decide import (
    CallModel,
    Complete,
    Done,
    Fail,
    RunTool,
    Start,
    Wait,
    decide,
)
from mezzo.engine.snapshot import load_run, snapshot_if_due, write_snapshot
from mezzo.engine.state import RunState, fold
from mezzo.files.storage import FileStore
from mezzo.files.tools import FILE_TOOLS, bind_file_tools, summary_for_context
from mezzo.governor.budget import hold_bounds, output_allowance
from mezzo.governor.calibration import InputCalibration
from mezzo.governor.limits import (
    CircuitBreaker,
    LearnedLimits,
    Limits,
    effective_limits,
    parse_rate_limit_headers,
)
from mezzo.governor.router import PrimaryStatus, Reason, RouteDecision, Router, RoutingError
from mezzo.governor.tokens import (
    CallableTokenizer,
    EstimateTokenizer,
    TiktokenTokenizer,
    Tokenizer,
    estimate_request,
)
from mezzo.protocol import (
    Event,
    ModelCallData,
    ModelResultData,
    NewEvent,
    ToolCallData,
    UsageData,
    WorkspaceConfig,
)
from mezzo.providers.base import (
    Message,
    ModelRequest,
    ModelResponse,
    ProviderError,
    TextDelta,
    ToolSpec,
)
from mezzo.providers.registry import Providers
from mezzo.store.base import RateLimit, Store, VersionConflict
from mezzo.tools.builtin import HUMAN_INPUT_TOOL
from mezzo.tools.context import ToolContext
from mezzo.tools.registry import ServerTool, ToolError, ToolRegistry, arguments_model, declare

log = structlog.get_logger("mezzo.engine")


FILE_TOOL_NAMES = frozenset(tool.__name__ for tool in FILE_TOOLS)


T = TypeVar("T")


async def _traced(coroutine: Awaitable[T], name: str, **attributes: Any) -> T:
    with tracing.span(name, **attributes):
        return await coroutine


class RetryLater(Exception):
    """Give the job back: after `delay_s` (None: the worker's backoff for the job's attempt),
    spending an attempt when `counts` is true."""

    def __init__(self, delay_s: float | None, error: str, *, counts: bool) -> None:
        super().__init__(error)
        self.delay_s = delay_s
        self.counts = counts


@dataclass(frozen=True, slots=True)
class WorkspaceRecord:
    id: str
    tenant: str
    config: WorkspaceConfig
    throttle_rate: float

    @classmethod
    def from_kv(cls, value: dict[str, Any]) -> WorkspaceRecord:
        return cls(
            id=value["id"],
            tenant=value["tenant"],
            config=WorkspaceConfig.model_validate(value["config"]),
            throttle_rate=float(value.get("throttle_rate", 1.0)),
        )


def workspace_key(workspace: str) -> str:
    return f"workspace/{workspace}"


def backoff(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with full jitter around the nominal delay (±50 %)."""
    nominal = min(cap, base * 2 ** max(0, attempt - 1))
    return nominal * random.uniform(0.5, 1.5)


class Engine:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        providers: Providers,
        tools: ToolRegistry,
        router: Router,
    ) -> None:
        self.store = store
        self.settings = settings
        self.providers = providers
        self.tools = tools
        self.router = router
        self.breakers: dict[str, CircuitBreaker] = {}
        self.learned: dict[str, LearnedLimits] = {}
        self.calibration = InputCalibration()
        self.files = FileStore.from_settings(settings)
        self._bound_file_tools: dict[str, dict[str, ServerTool]] = {}

    def tokenizer(self, provider: str, model: str) -> Tokenizer | None:
        """The model's own tokenizer where mezzo has it; None lets the counter choose."""
        configured = self.settings.model_tokenizers.get(model)
        if configured in ("o200k_base", "cl100k_base"):
            return TiktokenTokenizer(configured)
        if configured == "mezzo-stub":
            from mezzo.testing.tokens import StubTokenizer

            return StubTokenizer()
        if configured == "estimate":
            return EstimateTokenizer()
        if provider == "local":
            counter = getattr(self.providers.get("local"), "count_tokens", None)
            if counter is not None:
                return CallableTokenizer(f"local:{model}", counter)
        return None

    # ---- loading and appending

    async def load(self, workspace: str, run: str) -> RunState:
        return await load_run(self.store, workspace, run, self.settings.snapshot_every)

    async def workspace(self, workspace: str) -> WorkspaceRecord:
        value = await self.store.kv_get(workspace_key(workspace))
        if value is None:
            raise LookupError(f"workspace {workspace} does not exist")
        return WorkspaceRecord.from_kv(value)

    async def _append(self, state: RunState, events: Sequence[NewEvent]) -> list[Event]:
        before = state.version
        stored = await self.store.append(state.workspace, state.run, events, state.version)
        fold(stored, state)
        await snapshot_if_due(self.store, state, before, self.settings.snapshot_every)
        if state.terminal:
            await self.store.kv_delete(f"active/{state.run}")
            if self.settings.retain_events is not None:
                # The run's final state outlives its events: reads fold from this snapshot.
                await write_snapshot(self.store, state)
                await self.store.trim(state.workspace, self.settings.retain_events)
        return stored

    # ---- the loop

    async def advance(self, workspace: str, run: str) -> str:
        """Advance the run as far as it can go now. Returns why it stopped."""
        state = await self.load(workspace, run)
        if state.version == 0:
            await self.store.kv_delete(f"active/{run}")
            return "unknown run"
        record = await self.workspace(workspace)
        await self._settle_last_commit(state, record)
        while True:
            step = decide(state)
            try:
                match step:
                    case Done():
                        return state.status
                    case Wait(reason):
                        return reason
                    case Start():
                        await self._append(state, [NewEvent(type="run_started", data={})])
                    case Complete(output):
                        await self._append(
                            state, [NewEvent(type="completed", data={"output": output})]
                        )
                    case Fail(error):
                        await self._append(state, [NewEvent(type="failed", data={"error": error})])
                    case RunTool(call):
                        await self._run_tool(state, call, record.tenant)
                    case CallModel(number):
                        await self._call_model(state, record, number)
            except VersionConflict:
                state = await self.load(workspace, run)

    # ---- tools

    def _file_tools(self, workspace: str) -> dict[str, ServerTool]:
        """The file tools bound to this workspace (its files, the model's token cap)."""
        tools = self._bound_file_tools.get(workspace)
        if tools is None:
            tools = {}
            for function in bind_file_tools(self.files, workspace):
                decl = declare(function, side="server")
                tools[decl.name] = ServerTool(decl, function, arguments_model(function))
            if len(self._bound_file_tools) >= 1024:
                self._bound_file_tools.clear()
            self._bound_file_tools[workspace] = tools
        return tools

    async def _run_tool(self, state: RunState, call: ToolCallData, tenant: str) -> None:
        is_error = False
        try:
            tool = self._file_tools(state.workspace).get(call.name) or self.tools.get(call.name)
            with tracing.span("mezzo.tool", tool=call.name, run=state.run):
                output = await tool.call(call.arguments, ToolContext(tenant, state.workspace))
        except ToolError as exc:
            output, is_error = str(exc), True
        except Exception as exc:  # a tool's own failure is the model's to handle
            output, is_error = f"{type(exc).__name__}: {exc}", True
        limit = self.settings.tool_output_max_chars
        if len(output) > limit:
            output = output[:limit] + f"\n[truncated, {len(output) - limit} more characters]"
        result = {
            "call_id": call.call_id,
            "name": call.name,
            "output": output,
            "is_error": is_error,
        }
        await self._append(state, [NewEvent(type="tool_result", data=result)])

    # ---- model calls

    async def _request(self, state: RunState, config: WorkspaceConfig, model: str) -> ModelRequest:
        messages: list[Message] = []
        files = await asyncio.to_thread(self.files.list, state.workspace)
        context = [config.instructions] if config.instructions else []
        if files:
            context.append(
                "Files attached to this workspace (read them with the file tools, by file_id):\n"
                + "\n".join(summary_for_context(info) for info in files)
            )
        if context:
            messages.append(Message(role="system", content="\n\n".join(context)))
        messages.extend(state.transcript)
        decls = [*config.tools, HUMAN_INPUT_TOOL] if config.human_input else list(config.tools)
        if files:
            decls.extend(tool.decl for tool in self._file_tools(state.workspace).values())
        tools = tuple(ToolSpec(d.name, d.description, d.parameters) for d in decls)
        return ModelRequest(model=model, messages=tuple(messages), tools=tools)

    def _tool_side(self, config: WorkspaceConfig, name: str) -> str:
        if name == HUMAN_INPUT_TOOL.name or name in FILE_TOOL_NAMES:
            return "server"
        for decl in config.tools:
            if decl.name == name:
                return decl.side
        return "client"

    async def _settle_last_commit(self, state: RunState, record: WorkspaceRecord) -> None:
        """Commit the last model result's usage again: a no-op unless a worker died between
        appending the result and committing it."""
        result = state.last_result
        if result is None or not result.reservation:
            return
        actual = result.usage.input_tokens + result.usage.output_tokens
        commit = await self.store.commit(
            state.workspace, result.reservation, actual, record.config.alert_thresholds
        )
        await self._alerts(
            state.workspace, commit.thresholds_crossed, commit.committed, commit.budget
        )

    async def _alerts(
        self, workspace: str, crossed: Sequence[float], used: int, budget: int
    ) -> None:
        if crossed:
            events = [
                NewEvent(
                    type="budget_alert",
                    data={"threshold": t, "used": used, "budget": budget},
                )
                for t in crossed
            ]
            await self.store.append(workspace, None, events, None)

    def _provider_limits(self, key: str) -> tuple[RateLimit | None, RateLimit | None]:
        configured = self.settings.provider_limits.get(key)
        base = Limits(rpm=configured.rpm, tpm=configured.tpm) if configured else Limits()
        limits = effective_limits(base, self.learned.get(key), time.time())
        return (
            RateLimit(per_minute=limits.rpm) if limits.rpm else None,
            RateLimit(per_minute=limits.tpm) if limits.tpm else None,
        )

    async def _refund_pacing(self, record: WorkspaceRecord, key: str, unused: int) -> None:
        """Give back the rate-limit capacity a call was paced for but did not use."""
        if unused <= 0:
            return
        _, tpm = self._provider_limits(key)
        if tpm is None:
            return
        await self.store.acquire(f"provider:{key}", 0, -unused, (None, tpm))
        if record.throttle_rate < 1.0:
            share = RateLimit(per_minute=tpm.per_minute * record.throttle_rate)
            await self.store.acquire(f"throttle:{record.id}:{key}", 0, -unused, (None, share))

    def _breaker(self, key: str) -> CircuitBreaker:
        breaker = self.breakers.get(key)
        if breaker is None:
            breaker = self.breakers[key] = CircuitBreaker()
        return breaker

    async def _choose_route(
        self,
        state: RunState,
        record: WorkspaceRecord,
        estimate: int,
    ) -> tuple[RouteDecision, list[NewEvent]]:
        """Primary or fallback, taking rate-limit capacity on the one chosen."""
        config = record.config
        if state.downgraded:
            decision = self.router.decide(
                config.route, state.priority, PrimaryStatus(), downgrade=True
            )
            return decision, []
        route = self.router.route(config.route)
        key = str(route.primary)
        rpm, tpm = self._provider_limits(key)
        wait = 0.0
        if record.throttle_rate < 1.0 and tpm is not None:
            share = RateLimit(per_minute=tpm.per_minute * record.throttle_rate)
            wait = await self.store.acquire(
                f"throttle:{record.id}:{key}", 0, estimate, (None, share)
            )
            if wait > 0:
                raise _Throttled(wait)
        breaker = self._breaker(key)
        decision = self.router.decide(
            config.route, state.priority, PrimaryStatus.observe(0.0, breaker)
        )
        if not decision.is_fallback:
            if not breaker.allow():
                # Half-open and another call holds the probe: treat the breaker as open.
                busy = PrimaryStatus(breaker_retry_in_s=max(1.0, breaker.retry_in()))
                decision = self.router.decide(config.route, state.priority, busy)
            else:
                wait = await self.store.acquire(f"provider:{key}", 1, estimate, (rpm, tpm))
                if wait > 0:
                    decision = self.router.decide(
                        config.route, state.priority, PrimaryStatus(wait_s=wait)
                    )
        events: list[NewEvent] = []
        if decision.is_fallback:
            events.append(
                NewEvent(
                    type="routed",
                    data={
                        "from_route": str(route.primary),
                        "to_route": f"{decision.provider}:{decision.model}",
                        "reason": decision.reason.value,
                        "detail": decision.detail,
                    },
                )
            )
        elif decision.wait_s > 0:
            raise _RateLimited(decision.wait_s, key)
        return decision, events

    async def _call_model(self, state: RunState, record: WorkspaceRecord, step: int) -> None:
        config = record.config
        route = self.router.route(config.route)
        reservation_id = f"{state.run}:{step}"
        primary = route.primary
        request = await self._request(state, config, primary.model)
        counted = estimate_request(request, self.tokenizer(primary.provider, primary.model))
        estimate = self.calibration.scale(str(primary), counted)
        reservation = None
        pre_events: list[NewEvent] = []
        if not state.downgraded:
            minimum, wanted = hold_bounds(estimate, self.settings.max_output_tokens)
            reservation = await self.store.reserve(state.workspace, reservation_id, minimum, wanted)
            if reservation is None:
                await self._budget_exhausted(state, record, estimate)
                return
        try:
            # Providers count `max_output_tokens` against TPM when a request arrives.
            paced = hold_bounds(estimate, self.settings.max_output_tokens)[1]
            decision, route_events = await self._choose_route(state, record, paced)
        except (_Throttled, _RateLimited) as limited:
            if reservation is not None:
                await self.store.release_reservation(state.workspace, reservation_id)
            await self._append(state, [NewEvent(type="rate_limited", data=limited.data())])
            raise RetryLater(limited.wait, str(limited), counts=False) from None
        except RoutingError as exc:
            if reservation is not None:
                await self.store.release_reservation(state.workspace, reservation_id)
            await self._append(state, [NewEvent(type="failed", data={"error": str(exc)})])
            return
        pre_events.extend(route_events)
        max_output = (
            output_allowance(reservation.granted, estimate)
            if reservation is not None
            else self.settings.max_output_tokens
        )
        call = ModelCallData(
            step=step,
            route=config.route,
            provider=decision.provider,
            model=decision.model,
            reservation=reservation_id if reservation is not None else "",
            reserved_tokens=reservation.granted if reservation is not None else 0,
            estimated_input_tokens=estimate,
            max_output_tokens=max_output,
        )
        await self._append(
            state, [*pre_events, NewEvent(type="model_call", data=call.model_dump())]
        )
        request = ModelRequest(
            model=decision.model,
            messages=request.messages,
            tools=request.tools,
            max_output_tokens=max_output,
        )
        provider_key = f"{decision.provider}:{decision.model}"
        try:
            response = await self._stream(state, decision.provider, request)
        except _Cancelled as cancelled:
            if reservation is not None:
                await self.store.commit(
                    state.workspace, reservation_id, estimate + cancelled.output_tokens, []
                )
            raise VersionConflict(state.run, state.version, -1) from None
        except ProviderError as exc:
            await self._provider_failed(state, call, provider_key, exc)
            return
        self._breaker(provider_key).record(None)
        self._learn(provider_key, response.headers)
        if response.usage is not None and decision.reason is Reason.PRIMARY:
            self.calibration.observe(str(primary), counted, response.usage.input_tokens)
            await self._refund_pacing(record, provider_key, paced - response.usage.total_tokens)
        await self._model_succeeded(state, record, call, response, estimate)

    async def _budget_exhausted(
        self, state: RunState, record: WorkspaceRecord, estimate: int
    ) -> None:
        config = record.config
        ledger = await self.store.ledger_get(state.workspace)
        exhausted = NewEvent(
            type="budget_exhausted",
            data={
                "needed": hold_bounds(estimate, 0)[0],
                "remaining": ledger.remaining,
                "budget": ledger.budget,
            },
        )
        if config.fallback_behavior == "suspend":
            await self.store.kv_put(
                f"suspended/{state.workspace}/{state.run}", {"run": state.run, "since": time.time()}
            )
            await self._append(
                state, [exhausted, NewEvent(type="suspended", data={"reason": "budget exhausted"})]
            )
        elif config.fallback_behavior == "downgrade":
            try:
                decision = self.router.decide(
                    config.route, state.priority, PrimaryStatus(), downgrade=True
                )
            except RoutingError as exc:
                await self._append(
                    state, [exhausted, NewEvent(type="failed", data={"error": str(exc)})]
                )
                return
            route = self.router.route(config.route)
            routed = NewEvent(
                type="routed",
                data={
                    "from_route": str(route.primary),
                    "to_route": f"{decision.provider}:{decision.model}",
                    "reason": Reason.BUDGET_DOWNGRADE.value,
                    "detail": "token budget exhausted",
                },
            )
            await self._append(state, [exhausted, routed])
        else:
            error = (
                f"token budget exhausted: the next call needs {hold_bounds(estimate, 0)[0]} tokens, "
                f"{ledger.remaining} of {ledger.budget} are left"
            )
            await self._append(state, [exhausted, NewEvent(type="failed", data={"error": error})])

    async def _stream(
        self, state: RunState, provider_name: str, request: ModelRequest
    ) -> ModelResponse:
        provider = self.providers.get(provider_name)
        output_tokens = 0

        async def consume() -> ModelResponse:
            nonlocal output_tokens
            async for chunk in provider.stream(request):
                if isinstance(chunk, TextDelta):
                    output_tokens += 1
                    await self.store.publish_live(
                        Event(
                            seq=None,
                            workspace=state.workspace,
                            run=state.run,
                            type="delta",
                            ts=time.time(),
                            data={"text": chunk.text},
                        )
                    )
                else:
                    return chunk
            raise ProviderError("the provider ended the stream without a response", retryable=True)

        streaming = asyncio.create_task(
            _traced(consume(), "mezzo.provider", provider=provider_name, model=request.model)
        )
        watching = asyncio.create_task(self._watch_for_cancel(state))
        try:
            done, _ = await asyncio.wait({streaming, watching}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watching.cancel()
            if not streaming.done():
                streaming.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watching
        if streaming in done:
            return streaming.result()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await streaming
        raise _Cancelled(output_tokens)

    async def _watch_for_cancel(self, state: RunState, every_s: float = 0.2) -> None:
        """Returns when the run was cancelled (or otherwise moved on) by someone else."""
        while True:
            await asyncio.sleep(every_s)
            if await self.store.run_version(state.run) != state.version:
                newer = await self.store.read(
                    state.workspace, state.last_seq, ["cancelled"], 1, state.run
                )
                if newer:
                    return

    def _learn(self, key: str, headers: dict[str, str]) -> None:
        if not headers:
            return
        observation = parse_rate_limit_headers(headers, time.time())
        learned = self.learned.get(key, LearnedLimits())
        self.learned[key] = learned.learn(observation, time.time())

    async def _provider_failed(
        self, state: RunState, call: ModelCallData, key: str, error: ProviderError
    ) -> None:
        self._breaker(key).record(error)
        if call.reservation:
            await self.store.release_reservation(state.workspace, call.reservation)
        if error.status == 429:
            wait = error.retry_after if error.retry_after is not None else 1.0
            await self.store.block_until(f"provider:{key}", time.time() + wait)
            await self._append(
                state,
                [NewEvent(type="rate_limited", data={"wait_s": wait, "key": key, "status": 429})],
            )
            raise RetryLater(wait, f"429 from {key}", counts=False)
        if not error.retryable:
            await self._append(
                state,
                [
                    NewEvent(
                        type="failed", data={"error": f"{key}: {error}", "status": error.status}
                    )
                ],
            )
            return
        delay = error.retry_after
        await self._append(
            state,
            [
                NewEvent(
                    type="retry",
                    data={"error": f"{key}: {error}", "status": error.status, "delay_s": delay},
                )
            ],
        )
        raise RetryLater(delay, f"{key}: {error}", counts=True)

    async def _model_succeeded(
        self,
        state: RunState,
        record: WorkspaceRecord,
        call: ModelCallData,
        response: ModelResponse,
        estimate: int,
    ) -> None:
        config = record.config
        if response.usage is not None:
            usage = UsageData(
                input_tokens=response.usage.input_tokens, output_tokens=response.usage.output_tokens
            )
        else:
            usage = UsageData(
                input_tokens=estimate, output_tokens=max(0, call.reserved_tokens - estimate)
            )
        calls = [
            ToolCallData(
                call_id=tc.call_id or f"call_{uuid.uuid4().hex[:12]}",
                name=tc.name,
                arguments=tc.arguments,
                side=self._tool_side(config, tc.name),  # type: ignore[arg-type]
                step=call.step,
            )
            for tc in response.tool_calls
        ]
        result = ModelResultData(
            step=call.step,
            model=response.model or call.model,
            text=response.text,
            tool_calls=calls,
            usage=usage,
            usage_reported=response.usage is not None,
            finish_reason=response.finish_reason,
            reservation=call.reservation,
        )
        events = [NewEvent(type="model_result", data=result.model_dump())]
        if response.text:
            events.append(
                NewEvent(type="message", data={"role": "assistant", "content": response.text})
            )
        for tool_call in calls:
            if tool_call.name == HUMAN_INPUT_TOOL.name:
                question = str(tool_call.arguments.get("question", ""))
                asked = {"call_id": tool_call.call_id, "question": question}
                events.append(NewEvent(type="yield", data=asked))
            else:
                events.append(NewEvent(type="tool_call", data=tool_call.model_dump()))
        if not call.reservation:
            await self._append(state, events)
            return
        # Issued together so that a store that batches writes commits both at once. The usage
        # is charged even if the append loses a race: the tokens were spent.
        appended, commit = await asyncio.gather(
            self._append(state, events),
            self.store.commit(
                state.workspace,
                call.reservation,
                usage.input_tokens + usage.output_tokens,
                config.alert_thresholds,
            ),
            return_exceptions=True,
        )
        if isinstance(commit, BaseException):
            raise commit
        await self._alerts(
            state.workspace, commit.thresholds_crossed, commit.committed, commit.budget
        )
        if isinstance(appended, BaseException):
            raise appended


class _Cancelled(Exception):
    def __init__(self, output_tokens: int) -> None:
        super().__init__("cancelled")
        self.output_tokens = output_tokens


class _Throttled(Exception):
    def __init__(self, wait: float) -> None:
        super().__init__(f"workspace throttle: wait {wait:.2f} s")
        self.wait = wait

    def data(self) -> dict[str, Any]:
        return {"wait_s": self.wait, "key": "throttle"}


class _RateLimited(Exception):
    def __init__(self, wait: float, key: str) -> None:
        super().__init__(f"{key} rate limit: wait {wait:.2f} s")
        self.wait = wait
        self.key = key

    def data(self) -> dict[str, Any]:
        return {"wait_s": self.wait, "key": self.key}
