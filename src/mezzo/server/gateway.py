"""The OpenAI-compatible gateway's routes: an existing OpenAI client gets mezzo's budgets, rate
limits and fallback routing by pointing `base_url` at `http://mezzo/v1`.

HTTP: `POST /v1/responses` (streamed as SSE or not), `GET /v1/responses/{id}`,
`POST /v1/responses/{id}/cancel`, `POST /v1/responses/input_tokens`,
`POST /v1/chat/completions`, `GET /v1/models`. WebSocket mode at `/v1/responses` lives in
`gateway_ws.py`. Errors have OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request, WebSocket
from fastapi.responses import JSONResponse, Response, StreamingResponse

from mezzo.errors import MezzoError
from mezzo.providers.base import ModelResponse, ProviderError, TextDelta
from mezzo.server.gateway_service import (
    PRIORITY_HEADER,
    WORKSPACE_HEADER,
    Caller,
    Gateway,
    as_wire_error,
)
from mezzo.server.gateway_wire import (
    WireError,
    chat_chunk,
    chat_completion,
    chat_finish_reason,
    chat_tool_calls,
    chat_usage,
    parse_chat_body,
    parse_responses_body,
)
from mezzo.server.gateway_ws import serve_connection
from mezzo.service import Mezzo

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


def error_response(error: WireError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


def _sse(event: dict[str, Any]) -> bytes:
    data = json.dumps(event, separators=(",", ":"))
    return f"event: {event['type']}\ndata: {data}\n\n".encode()


async def _json(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise WireError(400, "The body is not valid JSON.", "invalid_json") from None


def gateway_router(mezzo: Mezzo) -> APIRouter:
    gateway = Gateway(mezzo)
    router = APIRouter(tags=["openai-compatible gateway"])

    async def caller(request: Request) -> Caller:
        try:
            tenant = await request.app.state.auth.tenant(request.headers.get("authorization"))
        except MezzoError as exc:
            raise WireError(
                exc.status, exc.message, "invalid_api_key", kind="authentication_error"
            ) from None
        return await gateway.caller(
            tenant, request.headers.get(WORKSPACE_HEADER), request.headers.get(PRIORITY_HEADER)
        )

    @router.post("/v1/responses")
    async def create_response(request: Request) -> Response:
        try:
            body = parse_responses_body(await _json(request))
            who = await caller(request)
            history = (
                (await gateway.previous(who.tenant, body.previous_response_id)).messages
                if body.previous_response_id
                else ()
            )
            turn = gateway.new_turn(body)
            events = gateway.respond(who, body, history, turn)
            first = await anext(events)
        except (WireError, MezzoError) as exc:
            return error_response(as_wire_error(exc))
        headers = {WORKSPACE_HEADER: who.record.id}
        if body.stream:

            async def stream() -> AsyncIterator[bytes]:
                yield _sse(first)
                async for event in events:
                    yield _sse(event)

            return StreamingResponse(
                stream(), media_type="text/event-stream", headers={**SSE_HEADERS, **headers}
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
            raw = await _json(request)
            if isinstance(raw, dict):
                raw = {k: v for k, v in raw.items() if k not in ("conversation",)}
            body = parse_responses_body(raw)
            who = await caller(request)
            history = (
                (await gateway.previous(who.tenant, body.previous_response_id)).messages
                if body.previous_response_id
                else ()
            )
            count = await gateway.count(who, body, history)
        except (WireError, MezzoError) as exc:
            return error_response(as_wire_error(exc))
        return JSONResponse({"object": "response.input_tokens", "input_tokens": count})

    @router.get("/v1/responses/{response_id}")
    async def get_response(response_id: str, request: Request) -> Response:
        try:
            who = await caller(request)
        except (WireError, MezzoError) as exc:
            return error_response(as_wire_error(exc))
        turn = gateway.in_flight.get(response_id)
        if turn is not None and turn.writer is not None and turn.body.store:
            return JSONResponse(turn.writer.response())
        found = await gateway.stored(who.tenant, response_id)
        if found is None:
            return error_response(_no_response(response_id))
        return JSONResponse(found.response)

    @router.post("/v1/responses/{response_id}/cancel")
    async def cancel_response(response_id: str, request: Request) -> Response:
        """Stops a response still being generated (charged for what it used) and returns it;
        a finished response is returned as it is."""
        try:
            who = await caller(request)
        except (WireError, MezzoError) as exc:
            return error_response(as_wire_error(exc))
        turn = gateway.in_flight.get(response_id)
        if turn is not None and turn.writer is not None:
            turn.cancel.set()
            response = turn.writer.response()
            response["status"] = "cancelled"
            return JSONResponse(response)
        found = await gateway.stored(who.tenant, response_id)
        if found is None:
            return error_response(_no_response(response_id))
        return JSONResponse(found.response)

    @router.get("/v1/models")
    async def models(request: Request) -> Response:
        try:
            await caller(request)
        except (WireError, MezzoError) as exc:
            return error_response(as_wire_error(exc))
        return JSONResponse({"object": "list", "data": gateway.models()})

    @router.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        try:
            body = parse_chat_body(await _json(request))
            who = await caller(request)
            admission, chunks, completion_id = await gateway.chat(who, body)
        except (WireError, MezzoError) as exc:
            return error_response(as_wire_error(exc))
        model = admission.decision.model
        headers = {WORKSPACE_HEADER: who.record.id}
        if not body.stream:
            result: ModelResponse | None = None
            try:
                async for chunk in chunks:
                    if isinstance(chunk, ModelResponse):
                        result = chunk
            except ProviderError as error:
                await gateway.release(admission)
                return error_response(_upstream(error))
            finally:
                if result is None:
                    await gateway.settle_chat(admission, None)
            assert result is not None
            await gateway.settle_chat(admission, result)
            return JSONResponse(
                chat_completion(completion_id, result.model or model, result), headers=headers
            )

        async def stream() -> AsyncIterator[bytes]:
            result: ModelResponse | None = None
            try:
                yield _data(chat_chunk(completion_id, model, {"role": "assistant", "content": ""}))
                async for chunk in chunks:
                    if isinstance(chunk, TextDelta):
                        yield _data(chat_chunk(completion_id, model, {"content": chunk.text}))
                    else:
                        result = chunk
                assert result is not None
                answered = result.model or model
                if result.tool_calls:
                    calls = chat_tool_calls(result.tool_calls)
                    yield _data(chat_chunk(completion_id, answered, {"tool_calls": calls}))
                yield _data(chat_chunk(completion_id, answered, {}, chat_finish_reason(result)))
                await gateway.settle_chat(admission, result)
                if body.include_usage:
                    usage = chat_usage(result.usage)
                    yield _data(chat_chunk(completion_id, answered, None, usage=usage))
                yield b"data: [DONE]\n\n"
            except ProviderError as error:
                await gateway.release(admission)
                yield _data(_upstream(error).body())
            finally:
                if result is None:
                    await gateway.settle_chat(admission, None)

        return StreamingResponse(
            stream(), media_type="text/event-stream", headers={**SSE_HEADERS, **headers}
        )

    @router.websocket("/v1/responses")
    async def responses_socket(websocket: WebSocket) -> None:
        await serve_connection(gateway, websocket)

    return router


def _data(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def _upstream(error: ProviderError) -> WireError:
    status = 429 if error.status == 429 else 502
    return WireError(
        status, f"upstream model error: {error}", "upstream_error", kind="server_error"
    )


def _no_response(response_id: str) -> WireError:
    return WireError(
        404, f"No response found with id '{response_id}'.", "response_not_found", "response_id"
    )
