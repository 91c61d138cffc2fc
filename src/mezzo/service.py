"""The application: every operation a client can ask for, with tenant checks.

The HTTP server and the embedded SDK both call this one class, so the two behave the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from typing import Any

from mezzo import keys, tenants, tracing
from mezzo.bounds import MAX_TOKENS, is_id
from mezzo.config import Settings
from mezzo.engine.engine import Engine
from mezzo.engine.snapshot import write_snapshot
from mezzo.engine.state import RunState, fold
from mezzo.engine.worker import WorkerPool, enqueue_run, run_job
from mezzo.errors import (
    BadRequest,
    IdempotencyConflict,
    InvalidConfiguration,
    InvalidCursor,
    NothingToResume,
    PayloadTooLarge,
    RunConflict,
    RunNotFound,
    Unavailable,
    Unprocessable,
    WorkspaceConflict,
    WorkspaceFileNotFound,
    WorkspaceNotFound,
)
from mezzo.files.errors import FileError, FileFormatError, FileNotFound, FileTooLarge
from mezzo.files.models import FileInfo
from mezzo.governor.governor import Governor
from mezzo.governor.router import Router, RoutingError
from mezzo.logs import get_logger
from mezzo.protocol import (
    BudgetView,
    CreateWorkspace,
    Event,
    InputIn,
    NewEvent,
    PendingToolCall,
    RunAccepted,
    RunView,
    SubmitRun,
    ToolResultsIn,
    UsageData,
    Workspace,
    WorkspaceConfig,
    YieldData,
    parse_types,
)
from mezzo.providers.registry import PROVIDERS, Providers
from mezzo.store.base import Store, VersionConflict
from mezzo.store.factory import open_store
from mezzo.store.metered import metered
from mezzo.suspensions import suspended_runs, unsuspend
from mezzo.text import scrubbed
from mezzo.tools.builtin import default_registry
from mezzo.tools.registry import ToolRegistry
from mezzo.workspaces import WorkspaceRecord, WorkspaceRecords

log = get_logger("mezzo.service")

APPEND_RETRIES = 20
# Events held for one subscriber that reads slower than they come; the rest stay in the store.
SUBSCRIBER_BUFFER = 32


def new_run_id() -> str:
    return f"run_{uuid.uuid4().hex}"


def idempotent_run_id(tenant: str, workspace: str, idempotency_key: str) -> str:
    """The run an Idempotency-Key names: the same key in the same workspace is the same run, so
    a retried submit meets the first one's events (a version conflict) and writes nothing."""
    named = json.dumps([tenant, workspace, idempotency_key]).encode()
    return f"run_{hashlib.sha256(named).hexdigest()[:32]}"


def new_workspace_id() -> str:
    return f"ws_{uuid.uuid4().hex[:16]}"


def run_view(state: RunState, workspace: str) -> RunView:
    """The run as its tenant sees it; `workspace` is the tenant's id for its workspace. Text a
    model or an older mezzo wrote with a lone surrogate shows U+FFFD (`mezzo.text`)."""
    asked = state.pending_yield
    return RunView(
        id=state.run,
        workspace=workspace,
        status=state.status,
        input=scrubbed(state.input),
        output=scrubbed(state.output),
        error=scrubbed(state.error),
        steps=state.steps,
        usage=UsageData(input_tokens=state.input_tokens, output_tokens=state.output_tokens),
        pending_tool_calls=[
            PendingToolCall(
                call_id=scrubbed(c.call_id), name=c.name, arguments=scrubbed(c.arguments)
            )
            for c in state.pending_client_calls
        ],
        pending_input=(None if asked is None else YieldData(**scrubbed(asked.model_dump()))),
        version=state.version,
        priority=state.priority,
        route=state.route,
    )


class Mezzo:
    def __init__(
        self,
        settings: Settings | None = None,
        *,
        store: Store | None = None,
        tools: ToolRegistry | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self._store = store
        self.tools = tools or default_registry(self.settings)
        self.providers = Providers(self.settings)
        self.router = Router.from_settings(
            {name: route.model_dump() for name, route in self.settings.effective_routes().items()},
            {
                k: (None if v == float("inf") else v)
                for k, v in self.settings.priority_max_wait.items()
            },
            providers=PROVIDERS,
        )
        self.engine: Engine | None = None
        self.governor: Governor | None = None
        self.workspaces: WorkspaceRecords | None = None
        self.pool: WorkerPool | None = None

    # ---- lifecycle

    @property
    def store(self) -> Store:
        """The store, opened (and metered) by `start`."""
        if self._store is None:
            raise Unavailable("mezzo is not started")
        return self._store

    async def start(self, *, workers: bool = True) -> None:
        if self._store is None:
            opened = await open_store(
                self.settings.store_url, sqlite_synchronous=self.settings.sqlite_synchronous
            )
        else:
            opened = self._store
            await opened.open()
        self._store = metered(opened)
        if workers:
            await self._switch_off_what_cannot_run()
        self.workspaces = WorkspaceRecords(self.store)
        self.governor = Governor(
            self.store,
            self.settings,
            self.router,
            self.providers.tokenizer,
            self.providers.output_cap,
        )
        self.engine = Engine(
            self.store, self.settings, self.providers, self.tools, self.governor, self.workspaces
        )
        if workers:
            await self.recover()
            self.pool = WorkerPool(
                self.store,
                self.engine,
                concurrency=self.settings.concurrency,
                lease_s=self.settings.lease_seconds,
                after_outage=self.recover,
            )
            self.pool.start()

    async def _switch_off_what_cannot_run(self) -> None:
        """Code runs only in a sandbox: where none can be made, `run_code` is off (the API nodes
        of a split deployment leave it on; their workers decide)."""
        if "run_code" in self.tools:
            from mezzo.preflight import sandbox_problem

            problem = await asyncio.to_thread(sandbox_problem)
            if problem is not None:
                self.tools.switch_off("run_code", problem.sentence())

    async def stop(self, grace_s: float = 10.0) -> None:
        if self.pool is not None:
            await self.pool.shutdown(grace_s)
            self.pool = None
        await self.providers.aclose()
        if self._store is not None:
            await self._store.close()

    async def recover(self) -> int:
        """Re-enqueue every unfinished run that is not waiting on someone: a run accepted just
        before a crash (of mezzo, or of a Redis primary that failed over) may have its events but
        not its job. Runs when workers start and when their store answers again after an
        outage. Enqueue is unique per run."""
        assert self.engine is not None
        count = 0
        for run, workspace in await self.store.active_runs(limit=1_000_000):
            state = await self.engine.load(workspace, run)
            if state.terminal:  # an index entry a store left behind: nothing to advance
                continue
            await enqueue_run(
                self.store, workspace, run, state.priority, self.settings.max_attempts
            )
            count += 1
        if count:
            log.info("recovered unfinished runs", count=count)
        return count

    # ---- workspaces
    #
    # A client names a workspace by its tenant's id for it; the store, the engine and the
    # governor by its key (`WorkspaceRecord.id`, see `mezzo.workspaces`). Ids are translated
    # here only: `_record` where a request comes in, `public_id` where a view or event leaves.

    async def _record(self, tenant: str, workspace: str) -> WorkspaceRecord:
        assert self.workspaces is not None
        record = await self.workspaces.find(tenant, workspace) if is_id(workspace) else None
        if record is None:
            raise WorkspaceNotFound(f"workspace {workspace!r} not found")
        return record

    async def workspace_record(self, tenant: str, workspace: str) -> WorkspaceRecord:
        """The tenant's workspace (from the per-process cache); NotFound when it is not theirs."""
        return await self._record(tenant, workspace)

    async def _view(self, record: WorkspaceRecord) -> Workspace:
        ledger = await self.store.ledger_get(record.id)
        return Workspace(
            id=record.public_id,
            tenant=record.tenant,
            config=record.config,
            throttle_rate=record.throttle_rate,
            created_at=record.created_at,
            budget=BudgetView(
                budget_tokens=ledger.budget, committed=ledger.committed, reserved=ledger.reserved
            ),
            head_seq=await self.store.head(record.id),
        )

    def _validate_config(self, config: WorkspaceConfig) -> None:
        try:
            self.router.route(config.route)
        except RoutingError as exc:
            raise InvalidConfiguration(str(exc)) from None
        for tool in config.tools:
            if tool.side == "server" and tool.name not in self.tools:
                raise InvalidConfiguration(self.tools.unavailable(tool.name))

    async def create_workspace(self, tenant: str, body: CreateWorkspace) -> tuple[Workspace, bool]:
        """Create the tenant's workspace `body.id` (or a new id), or find it when it exists with
        this configuration (409 with another). Ids are per tenant: another tenant's workspace of
        the same id is neither met nor revealed. Everything is checked before the first write,
        and each write is one a retry repeats harmlessly."""
        config = WorkspaceConfig.model_validate(body.model_dump(exclude={"id"}))
        self._validate_config(config)
        assert self.workspaces is not None
        workspace = body.id or new_workspace_id()
        record = await self.workspaces.find(tenant, workspace)
        created = False
        if record is None:
            key = keys.workspace_key(tenant, workspace)
            value: dict[str, Any] = {
                "id": key,
                "name": workspace,
                "tenant": tenant,
                "config": config.model_dump(mode="json"),
                "throttle_rate": 1.0,
                "created_at": time.time(),
            }
            created = await self.store.kv_put_if_absent(keys.workspace(key), value)
            stored = value if created else await self.store.kv_get(keys.workspace(key))
            assert stored is not None
            record = WorkspaceRecord.from_kv(stored)
            if record.tenant != tenant:  # only two tenants of one digest could get here
                raise WorkspaceConflict(
                    f"workspace id {workspace!r} cannot be used; choose another"
                )
            self.workspaces.remember(record)
        if not created and record.config != config:
            raise WorkspaceConflict(
                f"workspace {workspace!r} exists with a different configuration",
                detail={"existing": record.config.model_dump(mode="json")},
            )
        await self.store.ledger_init(record.id, config.budget_tokens)
        await tenants.add_workspace(self.store, tenant, workspace, record.id)
        return await self._view(record), created

    async def get_workspace(self, tenant: str, workspace: str) -> Workspace:
        return await self._view(await self._record(tenant, workspace))

    async def list_workspaces(self, tenant: str, limit: int = 1000) -> list[Workspace]:
        views = []
        for workspace in await tenants.workspaces_of(self.store, tenant, limit):
            with contextlib.suppress(WorkspaceNotFound):
                views.append(await self.get_workspace(tenant, workspace))
        return views

    async def throttle(self, tenant: str, workspace: str, rate: float) -> Workspace:
        key = (await self._record(tenant, workspace)).id
        value = await self.store.kv_get(keys.workspace(key))
        assert value is not None and self.workspaces is not None
        value["throttle_rate"] = rate
        await self.store.kv_put(keys.workspace(key), value)
        await self.store.append(key, None, [NewEvent(type="throttled", data={"rate": rate})], None)
        record = WorkspaceRecord.from_kv(value)
        self.workspaces.remember(record)
        return await self._view(record)

    async def add_budget(self, tenant: str, workspace: str, tokens: int) -> Workspace:
        record = await self._record(tenant, workspace)
        suspended = await suspended_runs(self.store, record.id)
        if not suspended:
            raise NothingToResume(
                f"workspace {workspace!r} has no run suspended for budget; a top-up resumes "
                "suspended runs"
            )
        budget = (await self.store.ledger_get(record.id)).budget
        if budget + tokens > MAX_TOKENS:
            raise BadRequest(
                f"a budget of {budget + tokens} tokens is more than the most a workspace can "
                f"have ({MAX_TOKENS})"
            )
        ledger = await self.store.ledger_add(record.id, tokens)
        await self.store.append(
            record.id,
            None,
            [NewEvent(type="budget_added", data={"tokens": tokens, "budget": ledger.budget})],
            None,
        )
        for run in suspended:
            await self._resume(record, run)
            await unsuspend(self.store, record.id, run)
        return await self._view(record)

    async def _resume(self, record: WorkspaceRecord, run: str) -> None:
        assert self.engine is not None
        for _ in range(APPEND_RETRIES):
            state = await self.engine.load(record.id, run)
            if state.status != "suspended":
                return
            job = run_job(record.id, run, state.priority, self.settings.max_attempts)
            try:
                await self.store.append(
                    record.id,
                    run,
                    [NewEvent(type="resumed", data={"reason": "budget added"})],
                    state.version,
                    enqueue=job,
                )
            except VersionConflict:
                continue
            return

    # ---- runs

    async def submit_run(
        self, tenant: str, workspace: str, body: SubmitRun, idempotency_key: str | None = None
    ) -> tuple[RunAccepted, bool]:
        with tracing.span("mezzo.submit", workspace=workspace):
            return await self._submit_run(tenant, workspace, body, idempotency_key)

    async def _submit_run(
        self, tenant: str, workspace: str, body: SubmitRun, idempotency_key: str | None
    ) -> tuple[RunAccepted, bool]:
        record = await self._record(tenant, workspace)
        key, config = record.id, record.config
        run = idempotent_run_id(tenant, workspace, idempotency_key) if idempotency_key else None
        seq, created, run = await self._accept(key, run or new_run_id(), body, config)
        return (
            RunAccepted(
                run=run,
                workspace=workspace,
                status="queued",
                seq=seq,
                events_url=f"/v1/workspaces/{workspace}/events?after={max(0, seq - 1)}",
                run_url=f"/v1/runs/{run}",
            ),
            created,
        )

    async def _accept(
        self, key: str, run: str, body: SubmitRun, config: WorkspaceConfig
    ) -> tuple[int, bool, str]:
        """Append the run's `run_queued` with its job: (seq, created, run). A run id already
        taken (an Idempotency-Key submitted again) answers as the first did; the refused append
        writes nothing (the store contract), so a finished run stays finished."""
        priority = body.priority or config.priority
        data = {
            "input": body.input,
            "priority": priority,
            "max_steps": body.max_steps or config.max_steps,
            "metadata": body.metadata,
        }
        job = run_job(key, run, priority, self.settings.max_attempts)
        try:
            appended = await self.store.append(
                key, run, [NewEvent(type="run_queued", data=data)], 0, enqueue=job
            )
        except VersionConflict:
            return await self._accepted_before(key, run, body), False, run
        return appended[0].seq or 0, True, run

    async def _accepted_before(self, key: str, run: str, body: SubmitRun) -> int:
        """The seq of the run an Idempotency-Key accepted before (0 once its events are
        compacted); 409 when that run was asked for with another input."""
        first = await self.store.read(key, 0, ["run_queued"], 1, run)
        if first:
            accepted_input, seq = first[0].data.get("input"), first[0].seq or 0
        else:  # compacted by retention: the run's folded state still knows its input
            assert self.engine is not None
            accepted_input, seq = (await self.engine.load(key, run)).input, 0
        if accepted_input != body.input:
            raise IdempotencyConflict("Idempotency-Key was used with a different request body")
        return seq

    async def run_owner(self, run: str) -> WorkspaceRecord | None:
        """The workspace a run belongs to, None for a run that does not exist."""
        assert self.workspaces is not None
        key = await self.store.run_workspace(run)
        return await self.workspaces.get(key) if key is not None else None

    async def _run_owner(self, tenant: str, run: str) -> WorkspaceRecord:
        record = await self.run_owner(run)
        if record is None or record.tenant != tenant:
            raise RunNotFound(f"run {run!r} not found")
        return record

    async def _state(self, tenant: str, run: str) -> tuple[WorkspaceRecord, RunState]:
        assert self.engine is not None
        record = await self._run_owner(tenant, run)
        return record, await self.engine.load(record.id, run)

    async def get_run(self, tenant: str, run: str) -> RunView:
        record, state = await self._state(tenant, run)
        return run_view(state, record.public_id)

    async def _append_decided(
        self,
        tenant: str,
        run: str,
        decide: Callable[[RunState], list[NewEvent]],
        *,
        advance: bool = False,
    ) -> tuple[WorkspaceRecord, RunState]:
        """Append what `decide` makes of the run's current state, checked against its version
        (and, with `advance`, enqueue the run's job in the same operation); on a race, fold
        again and decide again. `decide` raises to refuse. Returns the run's workspace and its
        state after the append."""
        for _ in range(APPEND_RETRIES):
            record, state = await self._state(tenant, run)
            events = decide(state)
            job = (
                run_job(state.workspace, run, state.priority, self.settings.max_attempts)
                if advance
                else None
            )
            try:
                stored = await self.store.append(
                    state.workspace, run, events, state.version, enqueue=job
                )
            except VersionConflict:
                continue
            return record, fold(stored, state)
        raise RunConflict(f"run {run!r} is changing too fast; try again")

    async def cancel_run(self, tenant: str, run: str, reason: str) -> RunView:
        def cancel(state: RunState) -> list[NewEvent]:
            if state.terminal:
                raise RunConflict(f"run {run!r} is already {state.status}")
            return [NewEvent(type="cancelled", data={"reason": reason})]

        record, final = await self._append_decided(tenant, run, cancel)
        await unsuspend(self.store, final.workspace, run)
        if self.settings.retain_events is not None:
            await write_snapshot(self.store, final)
        return run_view(final, record.public_id)

    async def submit_tool_results(self, tenant: str, run: str, body: ToolResultsIn) -> RunView:
        def results(state: RunState) -> list[NewEvent]:
            pending = {c.call_id: c for c in state.pending_client_calls}
            unknown = [r.call_id for r in body.results if r.call_id not in pending]
            if unknown:
                raise RunConflict(
                    f"no pending client tool call with id {', '.join(unknown)} on run {run!r}",
                    detail={"pending": sorted(pending)},
                )
            return [
                NewEvent(
                    type="tool_result",
                    data={
                        "call_id": r.call_id,
                        "name": pending[r.call_id].name,
                        "output": r.output,
                        "is_error": r.is_error,
                    },
                )
                for r in body.results
            ]

        record, state = await self._append_decided(tenant, run, results, advance=True)
        return run_view(state, record.public_id)

    async def submit_input(self, tenant: str, run: str, body: InputIn) -> RunView:
        def answer(state: RunState) -> list[NewEvent]:
            waiting = state.pending_yield
            if waiting is None:
                raise RunConflict(f"run {run!r} is not waiting for input (status {state.status})")
            result = {
                "call_id": waiting.call_id,
                "name": "request_human_input",
                "output": body.text,
                "is_error": False,
            }
            return [
                NewEvent(type="input", data={"call_id": waiting.call_id, "text": body.text}),
                NewEvent(type="tool_result", data=result),
            ]

        record, state = await self._append_decided(tenant, run, answer, advance=True)
        return run_view(state, record.public_id)

    # ---- files

    async def upload_file(
        self, tenant: str, workspace: str, name: str, chunks: AsyncIterator[bytes]
    ) -> FileInfo:
        record = await self._record(tenant, workspace)
        assert self.engine is not None
        try:
            info = await self.engine.files.save_stream(
                record.id, scrubbed(name), chunks, self.settings.max_upload_bytes, tenant=tenant
            )
        except FileTooLarge as exc:
            raise PayloadTooLarge(str(exc)) from None
        except FileFormatError as exc:
            raise Unprocessable(str(exc)) from None
        except (FileError, ValueError) as exc:
            raise BadRequest(str(exc)) from None
        return _shown_file(info, record)

    async def list_files(self, tenant: str, workspace: str) -> list[FileInfo]:
        record = await self._record(tenant, workspace)
        assert self.engine is not None
        infos = await asyncio.to_thread(self.engine.files.list, record.id)
        return [_shown_file(info, record) for info in infos]

    async def _file(self, tenant: str, workspace: str, file_id: str) -> tuple[str, FileInfo]:
        record = await self._record(tenant, workspace)
        assert self.engine is not None
        try:
            if not is_id(file_id):
                raise FileNotFound(record.id, file_id)
            info = await asyncio.to_thread(self.engine.files.get, record.id, file_id)
        except (FileError, ValueError):
            raise WorkspaceFileNotFound(
                f"file {file_id!r} not found in workspace {workspace!r}"
            ) from None
        return record.id, _shown_file(info, record)

    async def get_file(self, tenant: str, workspace: str, file_id: str) -> FileInfo:
        return (await self._file(tenant, workspace, file_id))[1]

    async def delete_file(self, tenant: str, workspace: str, file_id: str) -> None:
        key, _ = await self._file(tenant, workspace, file_id)
        assert self.engine is not None
        await asyncio.to_thread(self.engine.files.delete, key, file_id)

    # ---- events

    async def _cursor(
        self, tenant: str, workspace: str, after: int, types: str | Sequence[str] | None = None
    ) -> WorkspaceRecord:
        """The tenant's workspace, once `after` and `types` are checked (in that order: a
        workspace that is not the tenant's is a 404 whatever the rest is)."""
        record = await self._record(tenant, workspace)
        parse_types(types)
        if after < 0:
            raise InvalidCursor("after must be >= 0")
        head = await self.store.head(record.id)
        if after > head:
            raise InvalidCursor(f"after={after} is beyond the head of the log ({head})")
        return record

    async def check_cursor(
        self, tenant: str, workspace: str, after: int, types: str | Sequence[str] | None = None
    ) -> WorkspaceRecord:
        """The tenant's workspace, once `after` and `types` are checked for it."""
        return await self._cursor(tenant, workspace, after, types)

    async def events(
        self,
        tenant: str,
        workspace: str,
        after: int = 0,
        types: str | Sequence[str] | None = None,
        limit: int = 1000,
    ) -> list[Event]:
        """A page of the workspace's durable events after `after`; `types` (names, or one
        comma-separated string) filters them."""
        record = await self._cursor(tenant, workspace, after, types)
        page = await self.store.read(record.id, after, parse_types(types), limit)
        return [shown_event(event, record) for event in page]

    async def subscribe(
        self,
        tenant: str,
        workspace: str,
        after: int = 0,
        types: str | Sequence[str] | None = None,
    ) -> AsyncGenerator[Event, None]:
        """Durable events after `after`, then live ones as they come; text deltas too when
        `types` is None or names `delta`."""
        record = await self._cursor(tenant, workspace, after, types)
        wanted = parse_types(types)
        async with contextlib.aclosing(self._subscribe(record.id, after, wanted)) as events:
            async for event in events:
                yield shown_event(event, record)

    async def _subscribe(
        self, key: str, after: int, types: Sequence[str] | None
    ) -> AsyncGenerator[Event, None]:
        durable_types = [t for t in types if t != "delta"] if types else None
        want_live = types is None or "delta" in types
        if types and not durable_types:
            async for event in self.store.live(key):
                yield event
            return
        if not want_live:
            async for event in self.store.tail(key, after, durable_types):
                yield event
            return
        merged: asyncio.Queue[Event] = asyncio.Queue(maxsize=SUBSCRIBER_BUFFER)

        async def pump(source: AsyncIterator[Event]) -> None:
            async for event in source:
                await merged.put(event)

        tasks = [
            asyncio.create_task(pump(self.store.tail(key, after, durable_types))),
            asyncio.create_task(pump(self.store.live(key))),
        ]
        getter: asyncio.Task[Event] | None = None
        try:
            while True:
                getter = asyncio.create_task(merged.get())
                done, _ = await asyncio.wait({getter, *tasks}, return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    yield getter.result()
                    continue
                for task in tasks:
                    if task.done() and task.exception() is not None:
                        raise task.exception()  # type: ignore[misc]
        finally:
            pending: set[asyncio.Task[Any]] = {*tasks, getter} if getter else set(tasks)
            while pending:
                for task in pending:
                    task.cancel()
                # Again until they end: Python 3.11's wait_for can swallow a cancel, and a pump
                # that missed it would wait on `merged` forever, holding its connection.
                _, pending = await asyncio.wait(pending, timeout=0.5)


def shown_event(event: Event, record: WorkspaceRecord) -> Event:
    """`event` as its tenant sees it: under the tenant's id for the workspace, not its key."""
    if event.workspace == record.public_id:
        return event
    return event.model_copy(update={"workspace": record.public_id})


def _shown_file(info: FileInfo, record: WorkspaceRecord) -> FileInfo:
    if info.workspace == record.public_id:
        return info
    return info.model_copy(update={"workspace": record.public_id})
