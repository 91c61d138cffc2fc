"""An OpenAI-compatible stub LLM server: `/v1/responses`, `/v1/chat/completions`, `/v1/models`.

Answers are deterministic (see `behaviour.py`), usage is counted with the stub's own tokenizer
(`tokens.py`), and latency, pace, RPM/TPM limits and injected faults come from `StubConfig`,
which `POST /_stub/config` changes at run time. `GET /_stub/stats` tells what reached it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from typing import Any

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from mezzo.stub import chat_wire, responses_wire
from mezzo.stub.answer import Answer, Frame, transcript_after
from mezzo.stub.behaviour import Reply, decide
from mezzo.stub.config import StubConfig
from mezzo.stub.errors import Rejection, error_body
from mezzo.stub.responses_wire import MIDWAY_FAILURE
from mezzo.stub.responses_ws import serve_websocket
from mezzo.stub.state import StubState
from mezzo.stub.structured import instance, requested_schema, stopped
from mezzo.stub.tokens import split_tokens
from mezzo.stub.transcript import (
    BadRequest,
    Item,
    input_tokens,
    parse_chat_messages,
    parse_responses_input,
)


def _error(
    status: int,
    message: str,
    code: str | None = None,
    *,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        error_body(status, message, code, param), status_code=status, headers=headers
    )


def _bearer(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def shaped(reply: Reply, body: dict[str, Any], max_output: int | None) -> Reply:
    """The reply as the request's output options shape it: JSON of its schema, cut at a
    `stop` sequence."""
    if reply.call is not None:
        return reply
    schema = requested_schema(body)
    text = instance(schema) if schema is not None else reply.text
    cut = stopped(text, body)
    if schema is None and cut is None:
        return reply
    pieces = split_tokens(text if cut is None else cut)
    truncated = max_output is not None and len(pieces) > max_output
    pieces = pieces[:max_output] if truncated else pieces
    return Reply(
        text="".join(pieces), pieces=tuple(pieces), output_tokens=len(pieces), truncated=truncated
    )


class Stub:
    """Request handling around one `StubState`; every route is a method."""

    def __init__(self, state: StubState) -> None:
        self.state = state

    # -- admission ---------------------------------------------------------------------------

    def _admit(self, key: str, tokens: int, request_id: str) -> tuple[dict[str, str], bool]:
        """Injected faults, then limits; raises Rejection.

        Returns the headers for the answer and whether it is to break off midway.
        """
        state, stats = self.state, self.state.stats
        headers = {"x-request-id": "req_" + request_id.removeprefix("resp_")}
        fault = state.draw_fault()
        if fault is not None and fault != "midstream":
            stats.faults[fault] += 1
            headers.update(state.limits.peek(key, state.now()))
            if fault == "429":
                retry = state.config.fault_retry_after_s
                headers["retry-after"] = str(math.ceil(retry))
                headers["retry-after-ms"] = str(math.ceil(retry * 1000))
                message = "Rate limit reached (injected by the stub). Please try again later."
                raise Rejection(429, message, "rate_limit_exceeded", headers=headers)
            message = (
                "The server had an error while processing your request (injected by the stub)."
            )
            code = "server_error" if fault == "500" else "overloaded"
            raise Rejection(int(fault), message, code, headers=headers)
        decision = state.limits.acquire(key, tokens, state.now())
        headers.update(decision.headers)
        if not decision.allowed:
            stats.rate_limited += 1
            kind = decision.limit_type
            wait = decision.retry_after
            if math.isinf(wait):
                limit = state.config.tpm
                message = f"Request too large: {tokens} tokens exceed the limit of {limit} per min."
                raise Rejection(429, message, "rate_limit_exceeded", headers=headers)
            headers["retry-after"] = str(math.ceil(wait))
            headers["retry-after-ms"] = str(math.ceil(wait * 1000))
            message = f"Rate limit reached for {kind} per min. Please try again in {wait:.3f}s."
            raise Rejection(429, message, "rate_limit_exceeded", headers=headers)
        if fault == "midstream":
            stats.faults[fault] += 1
        return headers, fault == "midstream"

    def parse_body(
        self, raw: bytes | str, key: str, *, require_model: bool = True
    ) -> dict[str, Any]:
        """The JSON body of a create request, after the API key check."""
        self.check_key(key)
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise Rejection(400, "The request body is not valid JSON.") from None
        if not require_model and isinstance(body, dict):
            return body
        return self.validate_body(body)

    def check_key(self, key: str) -> None:
        expected = self.state.config.api_key
        if expected is not None and key != expected:
            raise Rejection(401, "Incorrect API key provided.", "invalid_api_key")

    @staticmethod
    def validate_body(body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise Rejection(400, "The request body must be a JSON object.")
        if not isinstance(body.get("model"), str) or not body["model"]:
            raise Rejection(400, "Missing required parameter: 'model'.", param="model")
        return body

    # -- pacing ------------------------------------------------------------------------------

    async def _wait_for_output(self, started: float, tokens: int) -> None:
        config = self.state.config
        pace = tokens / config.tokens_per_second if config.tokens_per_second else 0.0
        delay = started + config.latency_ms / 1000 + pace - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    async def paced(self, frames: list[Frame], started: float) -> AsyncIterator[list[Frame]]:
        """Frames in batches that are due together, waiting out latency and pace in between.

        A token frame is due at `started + latency + n / tokens_per_second`; a reply without
        tokens still waits out the latency before its last frame. Unpaced, it is one batch.
        """
        config = self.state.config
        first_token_at = started + config.latency_ms / 1000
        interval = 1 / config.tokens_per_second if config.tokens_per_second else 0.0
        sent_tokens = 0
        batch: list[Frame] = []
        for index, frame in enumerate(frames):
            if frame.token or (index == len(frames) - 1 and sent_tokens == 0):
                delay = first_token_at + sent_tokens * interval - time.monotonic()
                if delay > 0:
                    if batch:
                        yield batch
                        batch = []
                    await asyncio.sleep(delay)
                sent_tokens += frame.token
            batch.append(frame)
        if batch:
            yield batch

    async def _sse(
        self, frames: list[Frame], started: float, entry: dict[str, Any], *, done_marker: bool
    ) -> AsyncGenerator[bytes, None]:
        """SSE bytes of `frames`; a stream counts as completed once its last event is written."""
        stats = self.state.stats
        stats.streams_open += 1
        written = 0
        try:
            async for batch in self.paced(frames, started):
                chunk = b"".join(_sse_event(frame) for frame in batch)
                written += len(batch)
                if written == len(frames) and done_marker:
                    chunk += b"data: [DONE]\n\n"
                yield chunk
        finally:
            stats.streams_open -= 1
            if written == len(frames):
                stats.streams_completed += 1
                stats.completed += 1
                entry["outcome"] = "completed"
            else:
                stats.streams_disconnected += 1
                entry["outcome"] = "disconnected"

    # -- the two APIs ------------------------------------------------------------------------

    def _max_output(self, body: dict[str, Any], *names: str) -> int | None:
        for name in names:
            value = body.get(name)
            if value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise BadRequest(f"Invalid '{name}': expected an integer of at least 1.", name)
            return value
        return None

    def _tools(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        tools = body.get("tools") or []
        if not isinstance(tools, list) or not all(isinstance(tool, dict) for tool in tools):
            raise BadRequest("Invalid 'tools': expected an array of objects.", "tools")
        return tools

    def _answer(self, body: dict[str, Any], items: list[Item], max_output: int | None) -> Answer:
        tools = self._tools(body)
        if body.get("generate") is False:
            # WebSocket warm-up: the input is taken in and kept, nothing is generated.
            reply = Reply()
        else:
            reply = decide(
                items, max_output_tokens=max_output, reply_tokens=self.state.config.reply_tokens
            )
            reply = shaped(reply, body, max_output)
        return Answer(
            id="resp_" + uuid.uuid4().hex,
            model=body["model"],
            created=int(time.time()),
            items=items,
            reply=reply,
            input_tokens=input_tokens(items, tools),
            body=body,
        )

    def open_entry(self, path: str, key: str) -> dict[str, Any]:
        """Count a request and start its log entry."""
        stats = self.state.stats
        stats.requests += 1
        stats.by_path[path] += 1
        entry: dict[str, Any] = {"t": time.time(), "path": path, "key": key}
        stats.log.append(entry)
        return entry

    def close_entry(self, entry: dict[str, Any], status: int) -> None:
        entry["status"] = status
        entry.setdefault("outcome", "completed" if status == 200 else "refused")
        self.state.stats.by_status[status] += 1

    def _responses_items(
        self, body: dict[str, Any], local: dict[str, list[Item]] | None = None
    ) -> list[Item]:
        """The conversation of a Responses request, after its `previous_response_id`."""
        items = parse_responses_input(body.get("input"), body.get("instructions"))
        previous = body.get("previous_response_id")
        if previous is None:
            return items
        earlier = (local or {}).get(previous) or self.state.responses.get(previous)
        if earlier is None:
            message = f"Previous response with id '{previous}' not found."
            raise BadRequest(message, "previous_response_id", "previous_response_not_found")
        return [*earlier, *items]

    def prepare(
        self,
        body: dict[str, Any],
        api: str,
        key: str,
        entry: dict[str, Any],
        local: dict[str, list[Item]] | None = None,
    ) -> tuple[Answer, dict[str, str]]:
        """Parse, answer and admit one request; raises `Rejection` when it is refused.

        `local` holds responses only this connection may continue (WebSocket mode).
        """
        state, stats = self.state, self.state.stats
        try:
            if api == "responses":
                items = self._responses_items(body, local)
                answer = self._answer(body, items, self._max_output(body, "max_output_tokens"))
            else:
                items = parse_chat_messages(body.get("messages"))
                max_output = self._max_output(body, "max_completion_tokens", "max_tokens")
                answer = self._answer(body, items, max_output)
        except BadRequest as err:
            raise Rejection(400, err.message, err.code, param=err.param) from None
        entry.update(
            model=answer.model,
            # What the request asked besides its conversation (what a gateway passed on).
            params={k: v for k, v in body.items() if k not in ("input", "messages")},
            stream=bool(body.get("stream")),
            input_tokens=answer.input_tokens,
            output_tokens=answer.reply.output_tokens,
        )
        headers, breaks_off = self._admit(key, answer.total_tokens, answer.id)
        if breaks_off:
            answer = dataclasses.replace(answer, fails_midway=True)
        stats.input_tokens += answer.input_tokens
        stats.output_tokens += answer.reply.output_tokens
        stored = body.get("store", True) is not False
        if api == "responses" and stored and not answer.fails_midway:
            state.store_response(answer.id, transcript_after(answer))
        return answer, headers

    async def _serve(self, request: Request, api: str) -> Response:
        started = time.monotonic()
        key = _bearer(request)
        entry = self.open_entry(request.url.path, key)
        try:
            body = self.parse_body(await request.body(), key)
            answer, headers = self.prepare(body, api, key, entry)
            response = await self._write(answer, headers, body, api, started, entry)
        except Rejection as rejection:
            response = rejection.response()
        self.close_entry(entry, response.status_code)
        return response

    async def _write(
        self,
        answer: Answer,
        headers: dict[str, str],
        body: dict[str, Any],
        api: str,
        started: float,
        entry: dict[str, Any],
    ) -> Response:
        if not body.get("stream"):
            await self._wait_for_output(started, answer.reply.output_tokens)
            if answer.fails_midway:
                return Rejection(500, MIDWAY_FAILURE, "server_error", headers=headers).response()
            self.state.stats.completed += 1
            if api == "responses":
                status = responses_wire.final_status(answer)
                payload = responses_wire.response_object(answer, status=status)
            else:
                payload = chat_wire.completion(answer)
            return JSONResponse(payload, headers=headers)

        if api == "responses":
            frames = list(responses_wire.stream(answer))
        else:
            options = body.get("stream_options") or {}
            include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
            frames = list(chat_wire.stream(answer, include_usage=include_usage))
        entry["outcome"] = "streaming"
        content = self._sse(
            frames, started, entry, done_marker=api == "chat" and not answer.fails_midway
        )
        return _EventStream(content, headers=headers, media_type="text/event-stream; charset=utf-8")

    async def responses(self, request: Request) -> Response:
        return await self._serve(request, "responses")

    async def chat_completions(self, request: Request) -> Response:
        return await self._serve(request, "chat")

    async def input_token_count(self, request: Request) -> Response:
        """`POST /v1/responses/input_tokens`: what a create with this body would count as input.

        Not a model call: no limits, no faults.
        """
        key = _bearer(request)
        entry = self.open_entry(request.url.path, key)
        try:
            body = self.parse_body(await request.body(), key, require_model=False)
            items = self._responses_items(body)
            count = input_tokens(items, self._tools(body))
            response: Response = JSONResponse(
                {"object": "response.input_tokens", "input_tokens": count}
            )
        except Rejection as rejection:
            response = rejection.response()
        except BadRequest as err:
            response = Rejection(400, err.message, err.code, param=err.param).response()
        self.close_entry(entry, response.status_code)
        return response

    # -- models and admin --------------------------------------------------------------------

    async def models(self, request: Request) -> Response:
        return JSONResponse(
            {"object": "list", "data": [_model(name) for name in self.state.config.models]}
        )

    async def model(self, request: Request) -> Response:
        name = request.path_params["model"]
        if name not in self.state.config.models:
            return _error(
                404, f"The model '{name}' does not exist.", "model_not_found", param="model"
            )
        return JSONResponse(_model(name))

    async def get_config(self, request: Request) -> Response:
        return JSONResponse(self.state.config.model_dump())

    async def post_config(self, request: Request) -> Response:
        try:
            changes = json.loads(await request.body() or b"{}")
        except json.JSONDecodeError:
            return _error(400, "The request body is not valid JSON.")
        if not isinstance(changes, dict):
            return _error(400, "The request body must be a JSON object.")
        try:
            config = self.state.configure(changes)
        except ValidationError as err:
            message = "; ".join(
                f"{'.'.join(str(part) for part in error['loc']) or 'config'}: {error['msg']}"
                for error in err.errors()
            )
            return _error(422, message, "invalid_config")
        return JSONResponse(config.model_dump())

    async def get_stats(self, request: Request) -> Response:
        return JSONResponse(self.state.stats.snapshot())

    async def reset(self, request: Request) -> Response:
        self.state.reset()
        return JSONResponse({"reset": True})


def _sse_event(frame: Frame) -> bytes:
    data = json.dumps(frame.data, separators=(",", ":"))
    if frame.event is not None:
        return f"event: {frame.event}\ndata: {data}\n\n".encode()
    return f"data: {data}\n\n".encode()


class _EventStream(StreamingResponse):
    """Closes its generator as soon as the response ends, so a disconnect is counted at once."""

    body_iterator: AsyncGenerator[bytes, None]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.body_iterator.aclose()


def _model(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "mezzo-stub"}


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _error(exc.status_code, str(exc.detail))


def routes(stub: Stub) -> Iterable[BaseRoute]:
    async def websocket(websocket: WebSocket) -> None:
        await serve_websocket(stub, websocket)

    return [
        WebSocketRoute("/v1/responses", websocket),
        Route("/v1/responses", stub.responses, methods=["POST"]),
        Route("/v1/responses/input_tokens", stub.input_token_count, methods=["POST"]),
        Route("/v1/chat/completions", stub.chat_completions, methods=["POST"]),
        Route("/v1/models", stub.models, methods=["GET"]),
        Route("/v1/models/{model:path}", stub.model, methods=["GET"]),
        Route("/_stub/config", stub.get_config, methods=["GET"]),
        Route("/_stub/config", stub.post_config, methods=["POST"]),
        Route("/_stub/stats", stub.get_stats, methods=["GET"]),
        Route("/_stub/reset", stub.reset, methods=["POST"]),
    ]


def create_stub_app(config: StubConfig | None = None) -> ASGIApp:
    """The stub as an ASGI app; its `StubState` is at `app.state.stub`."""
    stub = Stub(StubState(config or StubConfig()))
    app = Starlette(routes=list(routes(stub)), exception_handlers={HTTPException: _http_error})
    app.state.stub = stub.state
    return app
