"""A Responses WebSocket to an upstream (the SDK's `responses.connect()`), held by one gateway
connection.

When the admitted route is an OpenAI-compatible Responses API (`openai_api = "responses"`), a
gateway connection keeps its own WebSocket to the upstream (the SDK's `responses.connect()`)
and the upstream's last response id with the transcript it covers. A turn that extends that
transcript sends only the new items plus `previous_response_id` (with `store: false`, as the
upstream's connection cache allows), so neither side re-sends or re-parses the history. Any
other turn (another model, changed instructions, a fallback in between) sends the whole
transcript on the same socket; a failed or cut-off turn forgets the chain and the socket.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import openai

from mezzo.providers.base import Chunk, Message, ModelRequest, ProviderError, TextDelta
from mezzo.providers.openai import OpenAIProvider, classify
from mezzo.providers.openai_wire.answers import output_message, response_from_json
from mezzo.providers.openai_wire.items import responses_items
from mezzo.providers.openai_wire.requests import responses_params

RETRYABLE = frozenset({408, 409, 429, 500, 502, 503, 504})


def speaks_responses_ws(provider: object) -> bool:
    return isinstance(provider, OpenAIProvider) and provider.api == "responses"


class UpstreamSession:
    def __init__(self, provider: OpenAIProvider) -> None:
        self.provider = provider
        self._manager: Any = None
        self._connection: Any = None
        self._chain: str | None = None
        self._covered: tuple[Message, ...] = ()

    async def _connect(self) -> Any:
        if self._connection is None:
            self._manager = self.provider.client.responses.connect()
            try:
                self._connection = await self._manager.enter()
            except openai.OpenAIError as error:
                self._manager = None
                raise classify(error) from error
            except OSError as error:
                self._manager = None
                raise ProviderError(f"upstream WebSocket: {error}", retryable=True) from error
        return self._connection

    def _body(self, request: ModelRequest) -> dict[str, Any]:
        params = responses_params(request, store=False)
        covered = len(self._covered)
        if (
            self._chain is not None
            and 0 < covered < len(request.messages)
            and request.messages[:covered] == self._covered
        ):
            params["input"] = responses_items(request.messages[covered:])
            params["previous_response_id"] = self._chain
        return {"type": "response.create", **params}

    async def stream(self, request: ModelRequest) -> AsyncIterator[Chunk]:
        body = self._body(request)
        self._chain = None
        connection = await self._connect()
        finished = False
        try:
            await connection.send_raw(json.dumps(body, separators=(",", ":")))
            while True:
                event = json.loads(await connection.recv_bytes())
                kind = event.get("type")
                if kind == "response.output_text.delta":
                    yield TextDelta(event["delta"])
                elif kind in ("response.completed", "response.incomplete"):
                    final = event["response"]
                    break
                elif kind == "response.failed":
                    error = event.get("response", {}).get("error") or {}
                    finished = True
                    raise ProviderError(
                        f"{error.get('code')}: {error.get('message', 'the response failed')}",
                        retryable=True,
                    )
                elif kind == "error":
                    finished = True
                    raise _error_event(event)
            result = response_from_json(final, request.model, {})
            finished = True
            reply = output_message(result)
            self._chain = final.get("id")
            self._covered = (*request.messages, reply) if reply is not None else request.messages
            yield result
        except openai.OpenAIError as error:
            raise classify(error) from error
        finally:
            if not finished:
                # A turn cut off midway leaves a response in flight upstream: drop the socket.
                await self.aclose()

    async def aclose(self) -> None:
        manager, self._manager, self._connection, self._chain = self._manager, None, None, None
        if manager is not None:
            with contextlib.suppress(Exception):
                await manager.__aexit__(None, None, None)


def _error_event(event: dict[str, Any]) -> ProviderError:
    error = event.get("error") or {}
    status = event.get("status")
    headers = {str(k).lower(): str(v) for k, v in (error.get("headers") or {}).items()}
    retry_after = None
    if "retry-after-ms" in headers:
        with contextlib.suppress(ValueError):
            retry_after = float(headers["retry-after-ms"]) / 1000
    elif "retry-after" in headers:
        with contextlib.suppress(ValueError):
            retry_after = float(headers["retry-after"])
    return ProviderError(
        f"{status}: {error.get('code')}: {error.get('message')}",
        status=status if isinstance(status, int) else None,
        retry_after=retry_after,
        retryable=status in RETRYABLE,
        headers=headers,
    )
