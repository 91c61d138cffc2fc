"""`Gateway`: what the OpenAI-compatible routes do, behind both HTTP and WebSocket framing.

Each request is charged to its caller's workspace (`callers.py`), resolves its `model` to a
route, passes the governor (`admission.py`), is answered by the backend the governor chose
(`backends.py`) and settles its usage once. Responses turns are written as Responses events
(`writer.py`) and stored for their tenant (`conversations.py`); Chat Completions calls are
answered as chunks or one completion by the route.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Any, Literal

from mezzo.errors import Cancelled, Unavailable
from mezzo.gateway.admission import admit
from mezzo.gateway.backends import Backend, answer, backend_for
from mezzo.gateway.callers import Caller, find_caller
from mezzo.gateway.conversations import Conversation, Page, StoredResponses
from mezzo.gateway.errors import WireError, no_previous_response, not_started
from mezzo.gateway.turns import InFlight, Turn, UpstreamFor, until_cancelled
from mezzo.gateway.writer import ResponseWriter
from mezzo.governor.governor import Admission, Governor
from mezzo.logs import get_logger
from mezzo.providers.base import (
    Chunk,
    Message,
    ModelRequest,
    ModelResponse,
    ProviderError,
    TextDelta,
    Usage,
)
from mezzo.providers.openai_wire.requests import ChatRequest, ResponsesRequest
from mezzo.service import Mezzo

log = get_logger("mezzo.gateway")


@dataclass(slots=True)
class ChatCall:
    """A Chat Completions call the governor let through, with its backend's chunks (a client
    that streams) or its whole answer (one that does not)."""

    id: str
    admission: Admission
    backend: Backend
    request: ModelRequest
    streamed: bool

    @property
    def model(self) -> str:
        return self.admission.decision.model


class Gateway:
    def __init__(self, mezzo: Mezzo, recent: int = 512) -> None:
        self.mezzo = mezzo
        self._stored: StoredResponses | None = None
        self._recent = recent
        self.in_flight = InFlight()

    @property
    def governor(self) -> Governor:
        if self.mezzo.governor is None:
            raise not_started()
        return self.mezzo.governor

    @property
    def stored(self) -> StoredResponses:
        if self._stored is None:
            try:
                store = self.mezzo.store
            except Unavailable:
                raise not_started() from None
            self._stored = StoredResponses(store, self._recent)
        return self._stored

    async def caller(self, tenant: str, workspace: str | None, priority: str | None) -> Caller:
        return await find_caller(self.mezzo, tenant, workspace, priority)

    # ---- models and routes

    def route_for(self, caller: Caller | None, model: str | None) -> str:
        """The route a `model` names: a route's own name, else the route whose primary is that
        model (the workspace's route first); no model: the workspace's route."""
        router = self.mezzo.router
        default = caller.record.config.route if caller is not None else "default"
        if not model:
            return default
        if model in router.routes:
            return model
        for name in [default, *sorted(router.routes)]:
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

    def model(self, model_id: str) -> dict[str, Any]:
        for entry in self.models():
            if entry["id"] == model_id:
                return entry
        raise WireError(
            404,
            f"The model '{model_id}' does not exist or you do not have access to it.",
            "model_not_found",
            "model",
        )

    def _primary_model(self, route_name: str) -> str:
        return self.mezzo.router.route(route_name).primary.model

    # ---- stored responses and turns in flight (each seen by its tenant only)

    async def previous(self, tenant: str, response_id: str | None) -> tuple[Message, ...]:
        if response_id is None:
            return ()
        found = await self.stored.get(tenant, response_id)
        if found is None:
            raise no_previous_response(response_id)
        return found.messages

    async def retrieve(self, tenant: str, response_id: str) -> dict[str, Any] | None:
        """A response: in flight in this process (when it is to be stored), else stored."""
        turn = self.in_flight.get(tenant, response_id)
        if turn is not None and turn.writer is not None and turn.body.store is not False:
            return turn.writer.response()
        found = await self.stored.get(tenant, response_id)
        return found.response if found is not None else None

    async def cancel(self, tenant: str, response_id: str) -> dict[str, Any] | None:
        """Stops a response still being generated (it is charged for what it used) and
        returns it; a finished response is returned as it is."""
        turn = self.in_flight.get(tenant, response_id)
        if turn is not None and turn.writer is not None:
            turn.stop()
            response = turn.writer.response()
            response["status"] = "cancelled"
            return response
        found = await self.stored.get(tenant, response_id)
        return found.response if found is not None else None

    async def delete(self, tenant: str, response_id: str) -> bool:
        if self.in_flight.get(tenant, response_id) is not None:
            raise WireError(
                409,
                f"Response '{response_id}' is still being generated; cancel it first.",
                "response_in_progress",
                "response_id",
            )
        return await self.stored.delete(tenant, response_id)

    async def input_items(
        self,
        tenant: str,
        response_id: str,
        order: Literal["asc", "desc"],
        after: str | None,
        before: str | None,
        limit: int,
    ) -> Page | None:
        return await self.stored.input_items(
            tenant, response_id, order=order, after=after, before=before, limit=limit
        )

    # ---- counting

    def count(self, caller: Caller, body: ResponsesRequest, history: tuple[Message, ...]) -> int:
        route_name = self.route_for(caller, body.model)
        request = body.model_request(self._primary_model(route_name), history)
        return self.governor.count(request, self.mezzo.router.route(route_name))

    # ---- one Responses turn

    def new_turn(self, tenant: str, body: ResponsesRequest) -> Turn:
        return Turn(tenant, body)

    async def _admit(
        self, caller: Caller, route_name: str, request: ModelRequest, hold_id: str
    ) -> tuple[Admission, Backend]:
        admission = await admit(
            self.governor, self.mezzo.store, caller, route_name, request, hold_id
        )
        provider = self.mezzo.providers.get(admission.decision.provider)
        try:
            backend = backend_for(provider, request, admission.model_key)
        except WireError:
            await self.governor.settle(admission, 0)
            raise
        if backend.dropped:
            log.warning(
                "gateway: fields dropped for a backend that cannot take them",
                model=admission.model_key,
                dropped=list(backend.dropped),
            )
        return admission, backend

    async def respond(
        self,
        caller: Caller,
        turn: Turn,
        history: tuple[Message, ...],
        *,
        settle_later: bool = False,
        upstream: UpstreamFor | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """The turn's stream events. `upstream` gives a connection's own session to a backend,
        where it has one; `settle_later` leaves the usage settlement and the store write
        running in `turn.settling`, for the caller to await before the workspace's next
        admission. Raises WireError before the first event when refused; a backend failure
        after that ends the stream with `response.failed`."""
        body = turn.body
        _refuse_unsupported(body)
        route_name = self.route_for(caller, body.model)
        request = body.model_request(self._primary_model(route_name), history)
        transcript = request.messages[1:] if body.instructions else request.messages
        if body.generate is False:
            async for event in self._warm(caller, turn, route_name, request, transcript):
                yield event
            return
        admission, backend = await self._admit(caller, route_name, request, f"gateway:{turn.id}")
        turn.backend = backend
        writer = turn.writer = ResponseWriter(turn.id, body, admission.decision.model)
        self.in_flight.add(turn)
        governor = self.governor
        streamed = bool(body.stream)
        try:
            if streamed:
                for event in writer.start():
                    yield event
            result: ModelResponse | None = None
            session = upstream(admission.decision.provider) if upstream is not None else None
            if session is not None:
                backend = Backend(session, backend.api, backend.dropped)
            chunks = governor.watch(
                admission,
                answer(backend, admission, admission.request(), streamed=streamed),
            )
            if streamed:
                async for chunk in until_cancelled(chunks, turn.cancel):
                    if isinstance(chunk, TextDelta):
                        for event in writer.delta(chunk.text):
                            yield event
                    else:
                        result = chunk
            else:
                # Nothing is sent before the end, so a cancel may simply cancel this task.
                result = await turn.awaited(_last(chunks))
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
            await self._store(turn.conclude(caller.record.id, transcript, None))
            if not streamed:  # the answer to the request that made it: the cancelled response
                yield {"type": "response.cancelled", "response": writer.response()}
            return
        except BaseException:
            # The client went away (or the server is stopping): charge what was used.
            turn.failed = True
            await asyncio.shield(governor.settle(admission, admission.usage(None).total_tokens))
            raise
        finally:
            self.in_flight.discard(turn)
        writer.model = result.model or admission.decision.model
        closing = writer.finish(result) if streamed else [writer.final(result)]
        conversation = turn.conclude(caller.record.id, transcript, result)
        charge = governor.settle(admission, admission.usage(result).total_tokens)
        if body.store is not False:
            self.stored.remember(conversation)
            settle: Awaitable[Any] = asyncio.gather(charge, self.stored.save(conversation))
        else:
            settle = charge
        if settle_later:
            turn.settling = asyncio.ensure_future(settle)
        else:
            await settle
        for event in closing:
            yield event

    async def _store(self, conversation: Conversation) -> None:
        if conversation.response.get("store"):
            await self.stored.save(conversation)

    async def _warm(
        self,
        caller: Caller,
        turn: Turn,
        route_name: str,
        request: ModelRequest,
        transcript: tuple[Message, ...],
    ) -> AsyncIterator[dict[str, Any]]:
        """`generate: false`: the conversation is held, nothing generated or charged."""
        counted = self.governor.count(request, self.mezzo.router.route(route_name))
        writer = turn.writer = ResponseWriter(turn.id, turn.body, turn.body.model)
        events = writer.warm(Usage(counted, 0))
        await self._store(turn.conclude(caller.record.id, transcript, None))
        for event in [writer.start()[0], *events]:
            event["sequence_number"] = 0 if event["type"] == "response.created" else 1
            yield event

    # ---- one Chat Completions call

    async def chat(self, caller: Caller, body: ChatRequest) -> ChatCall:
        if not body.model:
            raise WireError(
                400, "Missing required parameter: 'model'.", "missing_required_parameter", "model"
            )
        route_name = self.route_for(caller, body.model)
        request = body.model_request(self._primary_model(route_name))
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        admission, backend = await self._admit(
            caller, route_name, request, f"gateway:{completion_id}"
        )
        return ChatCall(completion_id, admission, backend, admission.request(), bool(body.stream))

    def chat_chunks(self, call: ChatCall) -> AsyncIterator[Chunk]:
        """A streamed call's chunks, watched by the governor."""
        return self.governor.watch(
            call.admission, answer(call.backend, call.admission, call.request, streamed=True)
        )

    async def chat_answer(self, call: ChatCall) -> ModelResponse:
        """The whole answer of a call that does not stream, charged once it is in; a backend
        failure raises ProviderError with nothing charged."""
        admission, governor = call.admission, self.governor
        complete = getattr(call.backend.provider, "complete", None)
        try:
            if complete is None or (call.request.stop and call.backend.api != "chat"):
                watched = governor.watch(
                    admission, answer(call.backend, admission, call.request, streamed=False)
                )
                result = await _last(watched)
                if result is None:
                    raise ProviderError("the backend gave no answer")
            else:
                try:
                    result = await complete(call.request)
                except ProviderError as error:
                    await governor.failed(admission, error)
                    raise
                governor.observe(admission, result)
        except ProviderError:
            await self.release(admission)
            raise
        except BaseException:
            await asyncio.shield(self.settle(admission, None))
            raise
        await self.settle(admission, result)
        return result

    async def settle(self, admission: Admission, result: ModelResponse | None) -> None:
        """Charge what the call used: all of it, or what streamed before it was cut off."""
        await self.governor.settle(admission, admission.usage(result).total_tokens)

    async def release(self, admission: Admission) -> None:
        """A call that failed upstream: nothing was served, nothing is charged."""
        await self.governor.settle(admission, 0)


def _refuse_unsupported(body: ResponsesRequest) -> None:
    if body.background:
        raise WireError(
            400,
            "Background mode is not supported by mezzo's gateway.",
            "unsupported_value",
            "background",
        )
    if body.conversation is not None:
        raise WireError(
            400,
            "Conversations are not supported by mezzo's gateway; chain responses with "
            "previous_response_id.",
            "unsupported_value",
            "conversation",
        )
    if not body.model:
        raise WireError(
            400, "Missing required parameter: 'model'.", "missing_required_parameter", "model"
        )


async def _last(chunks: AsyncIterator[Chunk]) -> ModelResponse | None:
    result = None
    async for chunk in chunks:
        if isinstance(chunk, ModelResponse):
            result = chunk
    return result
