"""A model step: admit the call through the governor, stream the answer, settle and record it.

Two store operations on the way through: the governor's hold carries the step's first events
(what was pending, `routed`, `model_call`); the settlement carries the result's (`model_result`,
`message`, `tool_call`/`yield`, and `completed` when the answer ends the run).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import replace

from mezzo.config import Settings
from mezzo.engine.decide import Complete, Fail, decide
from mezzo.engine.prompt import AttachedFiles, build_request
from mezzo.engine.retry import RetryLater
from mezzo.engine.run_writer import RunWriter
from mezzo.engine.state import RunState, fold
from mezzo.engine.streaming import stream_response
from mezzo.engine.tool_step import ToolStep, tool_side
from mezzo.errors import Cancelled
from mezzo.governor.governor import Admission, Call, Exhausted, Governor, RunLog, Wait
from mezzo.governor.router import RoutingError
from mezzo.protocol import Event, ModelResultData, NewEvent, ToolCallData, UsageData
from mezzo.providers.base import ModelResponse, ProviderError
from mezzo.providers.registry import Providers
from mezzo.store.base import Store, VersionConflict
from mezzo.suspensions import suspend
from mezzo.tools.builtin import HUMAN_INPUT_TOOL
from mezzo.workspaces import WorkspaceRecord

# Longest a step waits for budget in its worker slot before it gives its job back.
IN_SLOT_WAIT_S = 2.0


class ModelStep:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        providers: Providers,
        governor: Governor,
        tool_step: ToolStep,
        files: AttachedFiles,
    ) -> None:
        self.store = store
        self.settings = settings
        self.providers = providers
        self.governor = governor
        self.tool_step = tool_step
        self.files = files
        # How often a step of this process has waited for budget held by others.
        self._budget_waits: dict[str, int] = {}

    async def run(self, writer: RunWriter, record: WorkspaceRecord, step: int) -> None:
        await writer.landed()
        state = writer.state
        config = record.config
        hold_id = f"{state.run}:{step}"
        waited = 0.0
        try:
            route = self.governor.router.route(config.route)
            files = await self.files.list(state.workspace)
            file_tools = self.tool_step.file_tool_decls(state.workspace) if files else []
            request = build_request(state, config, route.primary.model, files, file_tools)
            while True:
                call = Call(
                    record,
                    request,
                    config.route,
                    state.priority,
                    hold_id,
                    downgraded=state.downgraded,
                    waits=self._budget_waits.get(hold_id, 0),
                )
                admitted = await self.governor.admit(
                    call, RunLog(state.run, writer.stored_version, step, tuple(writer.pending))
                )
                if not isinstance(admitted, Wait):
                    break
                waited = await self._wait(writer, hold_id, admitted, waited)
        except RoutingError as exc:
            await writer.append([NewEvent(type="failed", data={"error": str(exc)})])
            return
        if isinstance(admitted, Exhausted):
            self._budget_waits.pop(hold_id, None)
            await self._exhausted(writer, admitted)
            return
        assert isinstance(admitted, Admission)
        self._budget_waits.pop(hold_id, None)
        await writer.took(admitted.events)
        await self._call(writer, admitted, step)

    async def _wait(self, writer: RunWriter, hold_id: str, wait: Wait, waited: float) -> float:
        """Log the wait, then wait here for budget held by calls of this process (their settle
        wakes this one at once) up to `IN_SLOT_WAIT_S`; past that, or for a rate limit, give
        the job back until the wait is over (raises RetryLater). Returns the time waited."""
        if wait.reason != "budget":
            await writer.append([wait.event])
            raise RetryLater(wait.seconds, str(wait.event.data), counts=False)
        self._budget_waits[hold_id] = self._budget_waits.get(hold_id, 0) + 1
        if len(self._budget_waits) > 100_000:
            self._budget_waits.clear()
        if not writer.state.waiting_for_budget:
            await writer.append([wait.event])
        elif writer.pending:
            await writer.append([])
        if waited + wait.seconds > IN_SLOT_WAIT_S:
            raise RetryLater(wait.seconds, "waiting for budget held by other calls", counts=False)
        started = time.monotonic()
        await self.governor.wait_for_budget(writer.state.workspace, wait.seconds)
        return waited + time.monotonic() - started

    async def _exhausted(self, writer: RunWriter, exhausted: Exhausted) -> None:
        if exhausted.behavior == "suspend":
            await suspend(self.store, writer.state.workspace, writer.state.run)
            outcome = NewEvent(type="suspended", data={"reason": "budget exhausted"})
        else:
            outcome = NewEvent(type="failed", data={"error": exhausted.message})
        await writer.append([exhausted.event, outcome])

    async def _call(self, writer: RunWriter, admission: Admission, step: int) -> None:
        state = writer.state
        name = admission.decision.provider
        try:
            response = await stream_response(
                self.store, self.providers.get(name), name, state, admission.request()
            )
        except Cancelled as cancelled:
            await self.governor.settle(admission, admission.estimate + cancelled.output_tokens)
            raise VersionConflict(state.run, state.version, -1) from None
        except ProviderError as error:
            await self._provider_failed(writer, admission, error, step)
            return
        self.governor.observe(admission, response)
        usage = admission.usage(response)
        events = self._result_events(state, admission, response, step)
        log = RunLog(state.run, writer.stored_version, step)
        # Sent, not awaited: a server-side tool's work overlaps the round trip.
        writer.send(self.governor.settle(admission, usage.total_tokens, log, events), events)

    def _result_events(
        self, state: RunState, admission: Admission, response: ModelResponse, step: int
    ) -> list[NewEvent]:
        usage = admission.usage(response)
        tools = admission.call.workspace.config.tools
        calls = [
            ToolCallData(
                call_id=tc.call_id or f"call_{uuid.uuid4().hex[:12]}",
                name=tc.name,
                arguments=tc.arguments,
                side=tool_side(tools, tc.name),
                step=step,
            )
            for tc in response.tool_calls
        ]
        result = ModelResultData(
            step=step,
            model=response.model or admission.decision.model,
            text=response.text,
            tool_calls=calls,
            usage=UsageData(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens),
            usage_reported=response.usage is not None,
            finish_reason=response.finish_reason,
            reservation=admission.call.hold_id if admission.held else "",
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
        return events + _ending(state, events)

    async def _provider_failed(
        self, writer: RunWriter, admission: Admission, error: ProviderError, step: int
    ) -> None:
        key = admission.model_key
        wait = await self.governor.failed(admission, error)
        log = RunLog(writer.state.run, writer.stored_version, step)
        if wait is not None:
            event = NewEvent(type="rate_limited", data={"wait_s": wait, "key": key, "status": 429})
            await writer.took(await self.governor.settle(admission, 0, log, [event]))
            raise RetryLater(wait, f"429 from {key}", counts=False)
        if not error.retryable:
            failed = {"error": f"{key}: {error}", "status": error.status}
            await writer.took(
                await self.governor.settle(
                    admission, 0, log, [NewEvent(type="failed", data=failed)]
                )
            )
            return
        retry = {"error": f"{key}: {error}", "status": error.status, "delay_s": error.retry_after}
        await writer.took(
            await self.governor.settle(admission, 0, log, [NewEvent(type="retry", data=retry)])
        )
        raise RetryLater(error.retry_after, f"{key}: {error}", counts=True)


def _ending(state: RunState, events: list[NewEvent]) -> list[NewEvent]:
    """The event that ends the run right after `events`, when the next decision is to end it:
    stored with them, it costs no store operation of its own."""
    probe = replace(
        state,
        transcript=list(state.transcript),
        pending_calls=dict(state.pending_calls),
    )
    now = time.time()
    fold(
        (
            Event(
                seq=None, workspace=state.workspace, run=state.run, type=e.type, ts=now, data=e.data
            )
            for e in events
        ),
        probe,
    )
    match decide(probe):
        case Complete(output):
            return [NewEvent(type="completed", data={"output": output})]
        case Fail(error):
            return [NewEvent(type="failed", data={"error": error})]
    return []
