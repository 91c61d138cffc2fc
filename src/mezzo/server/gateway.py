"""The OpenAI-compatible gateway's HTTP routes: an existing OpenAI client gets mezzo's budgets,
rate limits and fallback routing by pointing `base_url` at `http://mezzo/v1`.

`POST /v1/responses` (streamed as SSE or not), `GET|DELETE /v1/responses/{id}`,
`GET /v1/responses/{id}/input_items`, `POST /v1/responses/{id}/cancel`,
`POST /v1/responses/input_tokens`, `POST /v1/chat/completions`, `GET /v1/models[/{id}]`;
WebSocket mode at `/v1/responses` is `gateway_ws.py`. What a request does is
`mezzo.gateway.Gateway`; this module reads requests and writes answers. Errors have OpenAI's
shape, `{"error": {"message", "type", "param", "code"}}`, and so does any other path or method
under `/v1` that no route serves (`fallback_router`, included last).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal

from fastapi import APIRouter, FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Match
from starlette.types import Receive, Scope, Send

from mezzo.errors import MezzoError
from mezzo.gateway import Gateway
from mezzo.gateway.callers import PRIORITY_HEADER, WORKSPACE_HEADER, Caller
from mezzo.gateway.errors import (
    WireError,
    as_wire_error,
    no_response,
    upstream_failed,
)
from mezzo.providers.base import ModelResponse, ProviderError, TextDelta
from mezzo.providers.openai_wire.answers import (
    all_choices,
    chat_chunk,
    chat_completion,
    chat_finish_reason,
    chat_usage,
)
from mezzo.providers.openai_wire.errors import parse
from mezzo.providers.openai_wire.items import chat_tool_calls
from mezzo.providers.openai_wire.requests import ChatRequest, ResponsesRequest
from mezzo.server import sse
from mezzo.server.gateway_ws import serve_connection
from mezzo.server.ops_middleware import TENANT_SCOPE_KEY
from mezzo.service import Mezzo
from mezzo.store.base import StoreUnavailable

TAGS: list[str | Any] = ["openai-compatible gateway"]


def error_response(error: WireError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


def _sse(event: dict[str, Any]) -> bytes:
    """A Responses API event: its type is the SSE event name."""
    return sse.frame(json.dumps(event, separators=(",", ":")), event=event["type"])


def _data(payload: dict[str, Any]) -> bytes:
    """A Chat Completions chunk: data only."""
    return sse.frame(json.dumps(payload, separators=(",", ":")))


async def tenant_of(request: Request) -> str:
    """The API key's tenant (recorded on the request for its log line)."""
    try:
        tenant: str = await request.app.state.auth.tenant(request.headers.get("authorization"))
    except MezzoError as exc:
        raise WireError(
            exc.status, exc.message, "invalid_api_key", kind="authentication_error"
        ) from None
    request.scope[TENANT_SCOPE_KEY] = tenant
    return tenant


Handler = Callable[[Request], Awaitable[Response]]


class GatewayRouter(APIRouter):
    """The gateway's routes; `hot` are those `FastPath` serves past FastAPI's machinery."""

    gateway: Gateway
    hot: dict[tuple[str, str], Handler]


class FastPath:
    """`POST /v1/responses` and `POST /v1/chat/completions` straight to their handlers, past
    FastAPI's per-request routing, dependency and exception layers (a fifth of a short call's
    CPU, measured). The routes stay registered, so the OpenAPI schema is the same, and so are
    the answers: the handlers turn every refusal into its OpenAI error themselves. Everything
    else goes to the app."""

    def __init__(self, app: FastAPI, routes: dict[tuple[str, str], Handler]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = (
            self.routes.get((scope["method"], scope["path"])) if scope["type"] == "http" else None
        )
        if handler is None:
            await self.app(scope, receive, send)
            return
        scope["app"] = self.app
        response = await handler(Request(scope, receive))
        await response(scope, receive, send)


def gateway_router(mezzo: Mezzo) -> GatewayRouter:
    gateway = Gateway(mezzo)
    router = GatewayRouter(tags=TAGS)

    async def caller(request: Request) -> Caller:
        tenant = await tenant_of(request)
        return await gateway.caller(
            tenant, request.headers.get(WORKSPACE_HEADER), request.headers.get(PRIORITY_HEADER)
        )

    @router.post("/v1/responses")
    async def create_response(request: Request) -> Response:
        try:
            body = parse(ResponsesRequest, await request.body())
            who = await caller(request)
            history = await gateway.previous(who.tenant, body.previous_response_id)
            turn = gateway.new_turn(who.tenant, body)
            events = gateway.respond(who, turn, history)
            first = await anext(events)
        except (WireError, MezzoError, StoreUnavailable) as exc:
            return error_response(as_wire_error(exc))
        headers = {WORKSPACE_HEADER: who.record.public_id, **turn.dropped_headers}
        if body.stream:

            async def stream() -> AsyncIterator[bytes]:
                yield _sse(first)
                async for event in events:
                    yield _sse(event)

            return StreamingResponse(
                stream(), media_type=sse.MEDIA_TYPE, headers={**sse.HEADERS, **headers}
            )
        last = first
        async for event in events:
            last = event
        final = last.get("response", {})
        if final.get("status") == "failed":
            error = final.get("error") or {}
            return error_response(
                WireError(
                    502, str(error.get("message")), str(error.get("code")), kind="server_error"
                )
            )
        return JSONResponse(final, headers=headers)

    @router.post("/v1/responses/input_tokens")
    async def input_tokens(request: Request) -> Response:
        try:
            body = parse(ResponsesRequest, await request.body())
            who = await caller(request)
            history = await gateway.previous(who.tenant, body.previous_response_id)
            count = gateway.count(who, body, history)
        except (WireError, MezzoError, StoreUnavailable) as exc:
            return error_response(as_wire_error(exc))
        return JSONResponse({"object": "response.input_tokens", "input_tokens": count})

    @router.get("/v1/responses/{response_id}")
    async def get_response(response_id: str, request: Request) -> Response:
        try:
            found = await gateway.retrieve(await tenant_of(request), response_id)
        except (WireError, MezzoError, StoreUnavailable) as exc:
            return error_response(as_wire_error(exc))
        if found is None:
            return error_response(no_response(response_id))
        return JSONResponse(found)

    @router.delete("/v1/responses/{response_id}")
    async def delete_response(response_id: str, request: Request) -> Response:
        try:
            deleted = await gateway.delete(await tenant_of(request), response_id)
        except (WireError, MezzoError, StoreUnavailable) as exc:
            return error_response(as_wire_error(exc))
        if not deleted:
            return error_response(no_response(response_id))
        return JSONResponse({"id": response_id, "object": "response", "deleted": True})

    @router.get("/v1/responses/{response_id}/input_items")
    async def input_items(
        response_id: str,
        request: Request,
        after: str | None = None,
        before: str | None = None,
        limit: int = 20,
        order: Literal["asc", "desc"] = "desc",
    ) -> Response:
        """The items a stored response answered, earlier turns included, newest first."""
        try:
            if not 1 <= limit <= 100:
                raise WireError(400, "'limit' must be from 1 to 100.", "invalid_value", "limit")
            page = await gateway.input_items(
                await tenant_of(request), response_id, order, after, before, limit
            )
        except (WireError, MezzoError, StoreUnavailable) as exc:
            return error_response(as_wire_error(exc))
        if page is None:
            return error_response(no_response(response_id))
        return JSONResponse(page.body())

    @router.post("/v1/responses/{response_id}/cancel")
    async def cancel_response(response_id: str, request: Request) -> Response:
        """Stops a response still being generated (charged for what it used) and returns it;
        a finished response is returned as it is."""
        try:
            found = await gateway.cancel(await tenant_of(request), response_id)
        except (WireError, MezzoError, StoreUnavailable) as exc:
            return error_response(as_wire_error(exc))
        if found is None:
            return error_response(no_response(response_id))
        return JSONResponse(found)

    @router.get("/v1/models")
    async def models(request: Request) -> Response:
        try:
            await tenant_of(request)
        except (WireError, MezzoError, StoreUnavailable) as exc:
            return error_response(as_wire_error(exc))
        return JSONResponse({"object": "list", "data": gateway.models()})

    @router.get("/v1/models/{model_id:path}")
    async def model(model_id: str, request: Request) -> Response:
        try:
            await tenant_of(request)
            return JSONResponse(gateway.model(model_id))
        except (WireError, MezzoError, StoreUnavailable) as exc:
            return error_response(as_wire_error(exc))

    @router.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        try:
            body = parse(ChatRequest, await request.body())
            who = await caller(request)
            call = await gateway.chat(who, body)
        except (WireError, MezzoError, StoreUnavailable) as exc:
            return error_response(as_wire_error(exc))
        admission, completion_id = call.admission, call.id
        headers = {WORKSPACE_HEADER: who.record.public_id, **call.backend.headers()}
        if not call.streamed:
            try:
                result = await gateway.chat_answer(call)
            except ProviderError as error:
                return error_response(upstream_failed(error))
            return JSONResponse(
                chat_completion(completion_id, result.model or call.model, result),
                headers=headers,
            )
        chunks = gateway.chat_chunks(call)

        async def stream() -> AsyncIterator[bytes]:
            model = call.model
            result: ModelResponse | None = None
            opened: set[int] = set()
            try:
                for index in range(body.n or 1):
                    opened.add(index)
                    role = {"role": "assistant", "content": ""}
                    yield _data(chat_chunk(completion_id, model, role, index=index))
                async for chunk in chunks:
                    if isinstance(chunk, TextDelta):
                        delta = {"content": chunk.text}
                        yield _data(chat_chunk(completion_id, model, delta, index=chunk.index))
                    else:
                        result = chunk
                assert result is not None
                answered = result.model or model
                for choice in all_choices(result):
                    if choice.tool_calls:
                        calls = {"tool_calls": chat_tool_calls(choice.tool_calls, indexed=True)}
                        yield _data(chat_chunk(completion_id, answered, calls, index=choice.index))
                    reason = chat_finish_reason(choice.tool_calls, choice.finish_reason)
                    yield _data(chat_chunk(completion_id, answered, {}, reason, index=choice.index))
                await gateway.settle(admission, result)
                if body.include_usage:
                    usage = chat_usage(result.usage or admission.usage(result))
                    yield _data(chat_chunk(completion_id, answered, None, usage=usage))
                yield sse.frame("[DONE]")
            except ProviderError as error:
                await gateway.release(admission)
                yield _data(upstream_failed(error).body())
            finally:
                if result is None:
                    await gateway.settle(admission, None)

        return StreamingResponse(
            stream(), media_type=sse.MEDIA_TYPE, headers={**sse.HEADERS, **headers}
        )

    @router.websocket("/v1/responses")
    async def responses_socket(websocket: WebSocket) -> None:
        await serve_connection(gateway, websocket)

    router.gateway = gateway
    router.hot = {
        ("POST", "/v1/responses"): create_response,
        ("POST", "/v1/chat/completions"): chat_completions,
    }
    return router


METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def fallback_router() -> APIRouter:
    """Any other path or method under `/v1`: a 404 or 405 in OpenAI's shape."""
    router = APIRouter()

    @router.api_route("/v1", methods=[*METHODS, "OPTIONS", "HEAD"], include_in_schema=False)
    @router.api_route(
        "/v1/{path:path}", methods=[*METHODS, "OPTIONS", "HEAD"], include_in_schema=False
    )
    async def unknown(request: Request, path: str = "") -> Response:
        allowed = _allowed_methods(request, router)
        if allowed:
            error = WireError(
                405,
                f"Method {request.method} is not allowed on /v1/{path}; use {', '.join(allowed)}.",
                "method_not_allowed",
                headers={"allow": ", ".join(allowed)},
            )
        else:
            error = WireError(
                404,
                f"Invalid URL ({request.method} /v1/{path}): mezzo serves no such route.",
                "unknown_url",
            )
        return error_response(error)

    return router


def _allowed_methods(request: Request, fallback: APIRouter) -> list[str]:
    """The methods that some other route serves at this path."""
    mine = {id(route) for route in fallback.routes}
    others = [
        route
        for route in request.app.router.routes
        if id(route) not in mine and getattr(route, "original_router", None) is not fallback
    ]
    scope = {key: value for key, value in request.scope.items() if key != "path_params"}
    return [
        method
        for method in METHODS
        if any(route.matches({**scope, "method": method})[0] is Match.FULL for route in others)
    ]
