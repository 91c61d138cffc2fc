"""What the OpenAI-compatible gateway does, behind both its HTTP routes and its WebSocket mode.

Each request is charged to a workspace: the one named by `X-Mezzo-Workspace` (it must belong to
the caller's tenant), else the tenant's default gateway workspace `gateway-<tenant>`, created
with the default configuration on first use. A response turn is: resolve the model to a route,
put the conversation together (the previous response's transcript plus the new items), pass
the governor (`Gate.admit`), stream from the provider while writing Responses events, then
commit the usage once and store the response when `store` is true.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from mezzo.engine.step import WorkspaceRecord, workspace_key
from mezzo.errors import MezzoError
from mezzo.governor.gate import Admission, BudgetExhausted, Gate, RateLimited
from mezzo.governor.router import Priority, RoutingError
from mezzo.protocol import CreateWorkspace
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

WORKSPACE_HEADER = "x-mezzo-workspace"
PRIORITY_HEADER = "x-mezzo-priority"
RESPONSE_KEY = "gateway/response/"
_SAFE_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")


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


def _error_from(exc: Exception) -> WireError:
    if isinstance(exc, WireError):
        return exc
    if isinstance(exc, BudgetExhausted):
        return WireError(
            429,
            str(exc),
            "insufficient_quota",
            None,
            "insufficient_quota",
            {"x-should-retry": "false"},
        )
    if isinstance(exc, RateLimited):
        return WireError(
            429,
            str(exc),
            "rate_limit_exceeded",
            None,
            "requests",
            {"retry-after": f"{max(1, round(exc.wait_s))}"},
        )
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
        self._gate: Gate | None = None
        self._recent: OrderedDict[str, Conversation] = OrderedDict()
        self._recent_max = recent
        self.in_flight: dict[str, Turn] = {}

    @property
    def gate(self) -> Gate:
        if self._gate is None:
            if self.mezzo.engine is None:
                raise WireError(503, "mezzo is not started", "unavailable", kind="server_error")
            self._gate = Gate(self.mezzo.engine)
        return self._gate

    # ---- who is asking

    async def caller(self, tenant: str, workspace: str | None, priority: str | None) -> Caller:
        store = self.mezzo.store
        if workspace:
            value = await store.kv_get(workspace_key(workspace))
            if value is None or value["tenant"] != tenant:
                raise WireError(
                    404,
                    f"workspace {workspace!r} not found",
                    "workspace_not_found",
                    "X-Mezzo-Workspace",
                )
        else:
            workspace = default_workspace(tenant)
            value = await store.kv_get(workspace_key(workspace))
            if value is None:
                await self.mezzo.create_workspace(tenant, CreateWorkspace(id=workspace))
                value = await store.kv_get(workspace_key(workspace))
            assert value is not None
        record = WorkspaceRecord.from_kv(value)
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
        return self.gate.count(request, self.mezzo.router.route(route_name).primary.provider)

    async def admit(
        self, caller: Caller, body: ResponsesBody, history: tuple[Message, ...], turn: Turn
    ) -> tuple[Admission, ModelRequest, tuple[Message, ...]]:
        """Everything that can refuse the turn before its first event; raises WireError."""
        try:
            route_name = self.route_for(caller, body.model)
            request, transcript = self.request(caller, route_name, body, history)
            admission = await self.gate.admit(
                caller.record, route_name, caller.priority, request, f"gateway:{turn.id}"
            )
        except WireError:
            raise
        except (BudgetExhausted, RateLimited, RoutingError, MezzoError) as exc:
            raise _error_from(exc) from None
        return admission, request, transcript

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
        admission, request, transcript = await self.admit(caller, body, history, turn)
        writer = turn.writer = ResponseWriter(turn.id, body, admission.decision.model)
        self.in_flight[turn.id] = turn
        gate = self.gate
        thresholds = caller.record.config.alert_thresholds
        try:
            if admission.routed is not None:
                await gate.log_routed(admission)
            for event in writer.start():
                yield event
            result: ModelResponse | None = None
            session = upstream(admission.decision.provider) if upstream is not None else None
            via = session.stream if session is not None else None
            chunks = gate.stream(admission, request, via)
            async for chunk in _until_cancelled(chunks, turn.cancel):
                if isinstance(chunk, TextDelta):
                    for event in writer.delta(chunk.text):
                        yield event
                else:
                    result = chunk
            assert result is not None
        except ProviderError as error:
            turn.failed = True
            await gate.release(admission)
            code = "rate_limit_exceeded" if error.status == 429 else "server_error"
            for event in writer.fail(code, f"{admission.model_key}: {error}"):
                yield event
            return
        except Cancelled:
            turn.failed = True
            await gate.commit_partial(admission, thresholds)
            writer.cancel()
            await self._finish(caller, turn, writer, transcript, None)
            return
        except BaseException:
            # The client went away (or the server is stopping): charge what was used.
            turn.failed = True
            await asyncio.shield(gate.commit_partial(admission, thresholds))
            raise
        finally:
            self.in_flight.pop(turn.id, None)
        usage = result.usage or Usage(admission.estimate, admission.output_tokens)
        writer.model = result.model or admission.decision.model
        closing = writer.finish(result)
        conversation = self._conclude(caller, turn, writer, transcript, result)
        settle = asyncio.gather(
            gate.commit(admission, usage.total_tokens, thresholds), self._store(conversation)
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
            counted = self.gate.count(request, self.mezzo.router.route(route_name).primary.provider)
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
        try:
            admission = await self.gate.admit(
                caller.record, route_name, caller.priority, request, f"gateway:{completion_id}"
            )
        except (BudgetExhausted, RateLimited, RoutingError) as exc:
            raise _error_from(exc) from None
        if admission.routed is not None:
            await self.gate.log_routed(admission)
        return admission, self.gate.stream(admission, request), completion_id

    async def settle_chat(
        self, caller: Caller, admission: Admission, result: ModelResponse | None
    ) -> None:
        thresholds = caller.record.config.alert_thresholds
        if result is None:
            await self.gate.commit_partial(admission, thresholds)
            return
        usage = result.usage or Usage(admission.estimate, admission.output_tokens)
        await self.gate.commit(admission, usage.total_tokens, thresholds)


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
