"""What the OpenAI-compatible gateway does, behind both its HTTP routes and its WebSocket mode.

Each request is charged to a workspace: the one named by `X-Mezzo-Workspace` (it must belong to
the caller's tenant), else the tenant's default gateway workspace `gateway-<tenant>`, created
with the default configuration on first use. A response turn is: resolve the model to a route,
put the conversation together (the previous response's transcript plus the new items), pass
the governor (the same `Governor.admit` a run's model step passes), stream from the provider
while writing Responses events, then settle the usage once and store the response when `store`
is true. A request the governor asks to wait (a rate limit, budget held by other calls) waits
here, bounded, and is refused with a 429 past that.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from mezzo.errors import MezzoError
from mezzo.governor.governor import Admission, Call, Exhausted, Governor, Wait
from mezzo.governor.router import Priority, RoutingError
from mezzo.protocol import CreateWorkspace, NewEvent
from mezzo.providers.base import (
    Chunk,
    Message,
    ModelRequest,
    ModelResponse,
    ProviderError,
    TextDelta,
    Usage,
)
from mezzo.server.gateway_upstream import UpstreamSession
from mezzo.server.gateway_wire import (
    ChatBody,
    ResponsesBody,
    ResponseWriter,
    WireError,
    new_response_id,
    output_message,
    parse_items,
    transcript_items,
)
from mezzo.service import Mezzo
from mezzo.workspaces import WorkspaceRecord

WORKSPACE_HEADER = "x-mezzo-workspace"
PRIORITY_HEADER = "x-mezzo-priority"
RESPONSE_KEY = "gateway/response/"
_SAFE_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")
# Longest a request waits, in all, on the primary's rate limit and on budget other calls hold.
MAX_WAIT_S = {"rate_limit": 60.0, "throttle": 60.0, "budget": 30.0}


def default_workspace(tenant: str) -> str:
    """`gateway-<tenant>`, or a digest of the tenant where its name is not a valid id."""
    if _SAFE_ID.match(tenant):
        return f"gateway-{tenant}"
    return f"gateway-{hashlib.sha256(tenant.encode()).hexdigest()[:16]}"


@dataclass(frozen=True, slots=True)
class Caller:
    tenant: str
    record: WorkspaceRecord
    priority: str


@dataclass(frozen=True, slots=True)
class Conversation:
    """A finished response: who owns it and the transcript a follow-up continues."""

    tenant: str
    workspace: str
    response: dict[str, Any]
    messages: tuple[Message, ...]


@dataclass(slots=True)
class Turn:
    """One response being produced: its writer, its fate, and the conversation it leaves."""

    id: str
    body: ResponsesBody
    writer: ResponseWriter | None = None
    conversation: Conversation | None = None
    failed: bool = False
    cancel: asyncio.Event = field(default_factory=asyncio.Event)
    settling: asyncio.Future[Any] | None = None


class Cancelled(Exception):
    pass


def _exhausted(exhausted: Exhausted) -> WireError:
    return WireError(
        429,
        exhausted.message,
        "insufficient_quota",
        None,
        "insufficient_quota",
        {"x-should-retry": "false"},
    )


def _waited_too_long(wait: Wait) -> WireError:
    if wait.reason == "budget":
        message = (
            "the workspace's budget is held by other calls in flight for longer than this "
            "request may wait; retry shortly"
        )
    else:
        message = f"{wait.event.data.get('key')} rate limit: retry in {wait.seconds:.1f} s"
    return WireError(
        429,
        message,
        "rate_limit_exceeded",
        None,
        "requests",
        {"retry-after": f"{max(1, round(wait.seconds))}"},
    )


def _error_from(exc: Exception) -> WireError:
    if isinstance(exc, WireError):
        return exc
    if isinstance(exc, RoutingError):
        return WireError(400, str(exc), "invalid_route")
    if isinstance(exc, MezzoError):
        return WireError(exc.status, exc.message, "invalid_request")
    raise exc


def as_wire_error(exc: Exception) -> WireError:
    return _error_from(exc)


class Gateway:
    def __init__(self, mezzo: Mezzo, recent: int = 512) -> None:
        self.mezzo = mezzo
        self._recent: OrderedDict[str, Conversation] = OrderedDict()
        self._recent_max = recent
        self.in_flight: dict[str, Turn] = {}

    @property
    def governor(self) -> Governor:
        if self.mezzo.governor is None:
            raise WireError(503, "mezzo is not started", "unavailable", kind="server_error")
        return self.mezzo.governor

    async def _record(self, workspace: str) -> WorkspaceRecord | None:
        if self.mezzo.workspaces is None:
            raise WireError(503, "mezzo is not started", "unavailable", kind="server_error")
        return await self.mezzo.workspaces.get(workspace)

    # ---- who is asking

    async def caller(self, tenant: str, workspace: str | None, priority: str | None) -> Caller:
        if workspace:
            record = await self._record(workspace)
            if record is None or record.tenant != tenant:
                raise WireError(
                    404,
                    f"workspace {workspace!r} not found",
                    "workspace_not_found",
                    "X-Mezzo-Workspace",
                )
        else:
            workspace = default_workspace(tenant)
            record = await self._record(workspace)
            if record is None:
                await self.mezzo.create_workspace(tenant, CreateWorkspace(id=workspace))
                record = await self._record(workspace)
            assert record is not None
        if priority is not None:
            try:
                priority = Priority(priority.strip().lower()).value
            except ValueError:
                raise WireError(
                    400,
                    f"unknown priority {priority!r}; high, normal or low",
                    "invalid_priority",
                    "X-Mezzo-Priority",
                ) from None
        return Caller(tenant, record, priority or record.config.priority)

    def route_for(self, caller: Caller, model: str) -> str:
        """The route a `model` names: a route's own name, else the route whose primary is that
        model (the workspace's route first)."""
        router = self.mezzo.router
        if model in router.routes:
            return model
        names = [caller.record.config.route, *sorted(router.routes)]
        for name in names:
            route = router.routes.get(name)
            if route is not None and model in (route.primary.model, str(route.primary)):
                return name
        raise WireError(
            404,
            f"The model `{model}` does not exist or you do not have access to it.",
            "model_not_found",
            "model",
        )

    def models(self) -> list[dict[str, Any]]:
        seen: dict[str, None] = {}
        for name, route in sorted(self.mezzo.router.routes.items()):
            seen[name] = None
            seen[route.primary.model] = None
            if route.fallback is not None:
                seen[route.fallback.model] = None
        return [{"id": m, "object": "model", "created": 0, "owned_by": "mezzo"} for m in seen]

    # ---- stored responses

    async def save(self, conversation: Conversation) -> None:
        response_id = conversation.response["id"]
        self._remember(conversation)
        await self.mezzo.store.kv_put(
            RESPONSE_KEY + response_id,
            {
                "tenant": conversation.tenant,
                "workspace": conversation.workspace,
                "response": conversation.response,
                "items": transcript_items(conversation.messages),
            },
        )

    def _remember(self, conversation: Conversation) -> None:
        self._recent[conversation.response["id"]] = conversation
        self._recent.move_to_end(conversation.response["id"])
        while len(self._recent) > self._recent_max:
            self._recent.popitem(last=False)

    async def stored(self, tenant: str, response_id: str) -> Conversation | None:
        found = self._recent.get(response_id)
        if found is None:
            value = await self.mezzo.store.kv_get(RESPONSE_KEY + response_id)
            if value is None:
                return None
            found = Conversation(
                value["tenant"],
                value["workspace"],
                value["response"],
                tuple(parse_items(value["items"])),
            )
            self._remember(found)
        return found if found.tenant == tenant else None

    async def previous(self, tenant: str, response_id: str) -> Conversation:
        found = await self.stored(tenant, response_id)
        if found is None:
            raise not_found_previous(response_id)
        return found

    # ---- one response

    def request(
        self, caller: Caller, route_name: str, body: ResponsesBody, history: tuple[Message, ...]
    ) -> tuple[ModelRequest, tuple[Message, ...]]:
        """The model request and the transcript it carries (without the instructions, which
        do not carry over to a follow-up)."""
        transcript = (*history, *body.input)
        system = (Message("system", body.instructions),) if body.instructions else ()
        model = self.mezzo.router.route(route_name).primary.model
        request = ModelRequest(
            model=model,
            messages=(*system, *transcript),
            tools=body.tools,
            max_output_tokens=body.max_output_tokens,
            temperature=body.temperature,
            tool_choice=body.tool_choice,
        )
        return request, transcript

    async def count(self, caller: Caller, body: ResponsesBody, history: tuple[Message, ...]) -> int:
        route_name = self.route_for(caller, body.model)
        request, _ = self.request(caller, route_name, body, history)
        return self.governor.count(request, self.mezzo.router.route(route_name))

    async def govern(
        self, caller: Caller, route_name: str, request: ModelRequest, hold_id: str
    ) -> Admission:
        """The governor's admission, after the waits it asks for (each logged once); raises
        WireError when the budget is spent or a wait would be too long."""
        governor = self.governor
        call = Call(caller.record, request, route_name, caller.priority, hold_id)
        waited: dict[str, float] = {}
        try:
            while True:
                try:
                    admitted = await governor.admit(call)
                except RoutingError as exc:
                    raise _error_from(exc) from None
                if isinstance(admitted, Admission):
                    return admitted
                if isinstance(admitted, Exhausted):
                    await self._log(caller, admitted.event)
                    raise _exhausted(admitted)
                so_far = waited.get(admitted.reason)
                if so_far is None:
                    await self._log(caller, admitted.event)
                    so_far = 0.0
                if so_far + admitted.seconds > MAX_WAIT_S.get(admitted.reason, 60.0):
                    raise _waited_too_long(admitted)
                started = time.monotonic()
                if admitted.reason == "budget":
                    await governor.wait_for_budget(caller.record.id, admitted.seconds)
                    call = replace(call, waits=call.waits + 1)
                else:
                    await asyncio.sleep(admitted.seconds)
                waited[admitted.reason] = so_far + time.monotonic() - started
        except BaseException:
            if "budget" in waited:  # it stood in the budget's line: leave it
                await asyncio.shield(governor.abandon(call))
            raise

    async def _log(self, caller: Caller, event: NewEvent) -> None:
        await self.mezzo.store.append(caller.record.id, None, [event], None, durable=False)

    async def admit(
        self, caller: Caller, body: ResponsesBody, history: tuple[Message, ...], turn: Turn
    ) -> tuple[Admission, tuple[Message, ...]]:
        """Everything that can refuse the turn before its first event; raises WireError."""
        try:
            route_name = self.route_for(caller, body.model)
            request, transcript = self.request(caller, route_name, body, history)
        except MezzoError as exc:
            raise _error_from(exc) from None
        admission = await self.govern(caller, route_name, request, f"gateway:{turn.id}")
        return admission, transcript

    async def respond(
        self,
        caller: Caller,
        body: ResponsesBody,
        history: tuple[Message, ...],
        turn: Turn,
        *,
        settle_later: bool = False,
        upstream: Callable[[str], UpstreamSession | None] | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """The turn's stream events (`upstream` gives a connection's own session to a provider,
        where it has one; `settle_later` leaves the usage commit and the store write running in
        `turn.settling`, for the caller to await before the workspace's next admission). Raises WireError before the first event when refused;
        a provider failure after that ends the stream with `response.failed`."""
        if not body.generate:
            async for event in self._warm(caller, body, history, turn):
                yield event
            return
        admission, transcript = await self.admit(caller, body, history, turn)
        writer = turn.writer = ResponseWriter(turn.id, body, admission.decision.model)
        self.in_flight[turn.id] = turn
        governor = self.governor
        try:
            for event in writer.start():
                yield event
            result: ModelResponse | None = None
            session = upstream(admission.decision.provider) if upstream is not None else None
            stream = (
                session.stream
                if session is not None
                else self.mezzo.providers.get(admission.decision.provider).stream
            )
            chunks = governor.watch(admission, stream(admission.request()))
            async for chunk in _until_cancelled(chunks, turn.cancel):
                if isinstance(chunk, TextDelta):
                    for event in writer.delta(chunk.text):
                        yield event
                else:
                    result = chunk
            assert result is not None
        except ProviderError as error:
            turn.failed = True
            await governor.settle(admission, 0)
            code = "rate_limit_exceeded" if error.status == 429 else "server_error"
            for event in writer.fail(code, f"{admission.model_key}: {error}"):
                yield event
            return
        except Cancelled:
            turn.failed = True
            await governor.settle(admission, admission.usage(None).total_tokens)
            writer.cancel()
            await self._finish(caller, turn, writer, transcript, None)
            return
        except BaseException:
            # The client went away (or the server is stopping): charge what was used.
            turn.failed = True
            await asyncio.shield(governor.settle(admission, admission.usage(None).total_tokens))
            raise
        finally:
            self.in_flight.pop(turn.id, None)
        writer.model = result.model or admission.decision.model
        closing = writer.finish(result)
        conversation = self._conclude(caller, turn, writer, transcript, result)
        settle = asyncio.gather(
            governor.settle(admission, admission.usage(result).total_tokens),
            self._store(conversation),
        )
        if settle_later:
            turn.settling = settle
        else:
            await settle
        for event in closing:
            yield event

    async def _finish(
        self,
        caller: Caller,
        turn: Turn,
        writer: ResponseWriter,
        transcript: tuple[Message, ...],
        result: ModelResponse | None,
    ) -> None:
        await self._store(self._conclude(caller, turn, writer, transcript, result))

    def _conclude(
        self,
        caller: Caller,
        turn: Turn,
        writer: ResponseWriter,
        transcript: tuple[Message, ...],
        result: ModelResponse | None,
    ) -> Conversation:
        """The conversation the turn leaves; held in memory at once when it is to be stored."""
        reply = output_message(result) if result is not None else None
        messages = (*transcript, reply) if reply is not None else transcript
        conversation = turn.conversation = Conversation(
            caller.tenant, caller.record.id, writer.response(), messages
        )
        if turn.body.store:
            self._remember(conversation)
        return conversation

    async def _store(self, conversation: Conversation) -> None:
        if conversation.response.get("store"):
            await self.save(conversation)

    async def _warm(
        self,
        caller: Caller,
        body: ResponsesBody,
        history: tuple[Message, ...],
        turn: Turn,
    ) -> AsyncIterator[dict[str, Any]]:
        try:
            route_name = self.route_for(caller, body.model)
            request, transcript = self.request(caller, route_name, body, history)
            counted = self.governor.count(request, self.mezzo.router.route(route_name))
        except RoutingError as exc:
            raise _error_from(exc) from None
        writer = turn.writer = ResponseWriter(turn.id, body, body.model)
        events = writer.warm(Usage(counted, 0))
        await self._finish(caller, turn, writer, transcript, None)
        for event in [writer.start()[0], *events]:
            event["sequence_number"] = 0 if event["type"] == "response.created" else 1
            yield event

    def new_turn(self, body: ResponsesBody) -> Turn:
        return Turn(new_response_id(), body)

    # ---- chat completions

    async def chat(
        self, caller: Caller, body: ChatBody
    ) -> tuple[Admission, AsyncIterator[Chunk], str]:
        route_name = self.route_for(caller, body.model)
        model = self.mezzo.router.route(route_name).primary.model
        request = ModelRequest(
            model=model,
            messages=tuple(body.messages),
            tools=body.tools,
            max_output_tokens=body.max_output_tokens,
            temperature=body.temperature,
            tool_choice=body.tool_choice,
        )
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        admission = await self.govern(caller, route_name, request, f"gateway:{completion_id}")
        provider = self.mezzo.providers.get(admission.decision.provider)
        chunks = self.governor.watch(admission, provider.stream(admission.request()))
        return admission, chunks, completion_id

    async def settle_chat(self, admission: Admission, result: ModelResponse | None) -> None:
        """Charge what the call used: all of it, or what streamed before it was cut off."""
        await self.governor.settle(admission, admission.usage(result).total_tokens)

    async def release(self, admission: Admission) -> None:
        """A call that failed upstream: nothing was served, nothing is charged."""
        await self.governor.settle(admission, 0)


def not_found_previous(response_id: str) -> WireError:
    return WireError(
        400,
        f"Previous response with id '{response_id}' not found.",
        "previous_response_not_found",
        "previous_response_id",
    )


async def _until_cancelled(
    stream: AsyncIterator[Chunk], cancel: asyncio.Event
) -> AsyncIterator[Chunk]:
    """The stream's chunks until `cancel` is set (then Cancelled, the stream closed)."""
    iterator = stream.__aiter__()
    waiter = asyncio.ensure_future(cancel.wait())
    try:
        while True:
            step = asyncio.ensure_future(iterator.__anext__())
            done, _ = await asyncio.wait({step, waiter}, return_when=asyncio.FIRST_COMPLETED)
            if step not in done:
                step.cancel()
                with contextlib.suppress(BaseException):
                    await step
                raise Cancelled
            try:
                yield step.result()
            except StopAsyncIteration:
                return
    finally:
        waiter.cancel()
        with contextlib.suppress(BaseException):
            await iterator.aclose()  # type: ignore[attr-defined]
