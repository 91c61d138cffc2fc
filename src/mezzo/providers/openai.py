"""OpenAI and OpenAI-compatible backends through the official SDK (`openai.AsyncOpenAI`).

`api="responses"` speaks the Responses API (OpenAI itself); `api="chat"` speaks Chat
Completions (vLLM, Ollama, llama.cpp and other compatible servers). Both stream. The SDK's own
retries are off (`max_retries=0`): mezzo's governor owns retries, and every failure becomes a
`ProviderError` with the status, `retry-after` and response headers it needs.
"""

from __future__ import annotations

import email.utils
import json
import math
import os
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import openai
from openai import AsyncOpenAI, AsyncStream

from mezzo.providers.base import (
    Chunk,
    ModelRequest,
    ModelResponse,
    ProviderError,
    TextDelta,
    WireApi,
)
from mezzo.providers.openai_wire.answers import ChatAnswer, response_from_json
from mezzo.providers.openai_wire.requests import chat_params, responses_params

Api = WireApi
# Asks the SDK for the raw HTTP answer (its `with_raw_response`), so headers come with the body.
_RAW = {"X-Stainless-Raw-Response": "raw"}

RETRYABLE_STATUSES = frozenset({408, 409, 429})


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from `retry-after-ms`, else `retry-after` (seconds or an HTTP date)."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) / scale
        except ValueError:
            continue
        if math.isfinite(seconds):
            return max(0.0, seconds)
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {key.lower(): value for key, value in headers.items()}


def classify(error: Exception) -> ProviderError:
    """The `ProviderError` for an exception raised by the SDK."""
    if isinstance(error, openai.APIStatusError):
        headers = _lower(error.response.headers)
        status = error.status_code
        retryable = status in RETRYABLE_STATUSES or status >= 500
        return ProviderError(
            f"{status}: {error.message}",
            status=status,
            retry_after=parse_retry_after(headers),
            retryable=retryable,
            headers=headers,
        )
    if isinstance(error, openai.APITimeoutError):
        return ProviderError(f"timeout: {error}", retryable=True)
    if isinstance(error, openai.APIConnectionError):
        return ProviderError(f"connection error: {error}", retryable=True)
    if isinstance(error, openai.APIError):
        # An error reported inside an otherwise successful stream.
        return ProviderError(f"stream error: {error.message}", retryable=True)
    return ProviderError(f"{type(error).__name__}: {error}", retryable=False)


# -- the provider --------------------------------------------------------------------------------


def wire_api(provider: object) -> WireApi | None:
    """The OpenAI API a provider speaks; None for a backend that is not an OpenAI API."""
    return provider.api if isinstance(provider, OpenAIProvider) else None


class OpenAIProvider:
    """A `Provider` for OpenAI's Responses API or any Chat Completions server.

    `base_url` and `api_key` default to `OPENAI_BASE_URL` and `OPENAI_API_KEY`; a server of
    your own (a `base_url`) may need no key, so a placeholder is sent then. The SDK runs on
    aiohttp where the `aiohttp` extra is installed (a fifth of httpx's CPU per call).
    """

    def __init__(
        self,
        api: Api = "responses",
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float | None = 600.0,
        store: bool = False,
        name: str = "openai",
        client: AsyncOpenAI | None = None,
    ) -> None:
        if api not in ("responses", "chat"):
            raise ValueError(f"api must be 'responses' or 'chat', not {api!r}")
        self.name = name
        self.api: Api = api
        self.store = store
        if client is None:
            base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
            api_key = api_key or os.environ.get("OPENAI_API_KEY")
            if api_key is None:
                if base_url is None:
                    raise ValueError("OPENAI_API_KEY is not set and no api_key was given")
                api_key = "not-needed"
            client = AsyncOpenAI(
                base_url=base_url,
                api_key=api_key,
                max_retries=0,
                timeout=timeout,
                http_client=_http_client(timeout),
            )
        self.client = client

    async def aclose(self) -> None:
        await self.client.close()

    def stream(self, request: ModelRequest) -> AsyncIterator[Chunk]:
        if self.api == "responses":
            return self._stream_responses(request)
        return self._stream_chat(request)

    async def complete(self, request: ModelRequest) -> ModelResponse:
        """The whole answer in one non-streamed request (no deltas to relay)."""
        if self.api == "responses":
            body = responses_params(request, store=self.store)
            raw = await self._post("/responses", body)
            return response_from_json(_json(raw), request.model, _lower(raw.headers))
        raw = await self._post("/chat/completions", chat_params(request, stream=False))
        answer = ChatAnswer(request.model)
        answer.take(_json(raw))
        return answer.response(_lower(raw.headers))

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        try:
            return await self.client.post(
                path,
                cast_to=object,
                body={**body, "stream": False},
                options={"headers": _RAW},
            )
        except openai.OpenAIError as err:
            raise classify(err) from err

    async def _open(self, path: str, body: dict[str, Any]) -> AsyncStream[Any]:
        # The SDK's generic `post` (its documented way to call any endpoint) with raw events:
        # the typed `responses.create(**body)` walks the whole history through its param
        # transforms on every step (10x slower at 200 messages), and building its pydantic
        # event objects costs more than the rest of the call. The SDK still does the
        # transport, auth, SSE decoding and error mapping.
        try:
            return await self.client.post(
                path,
                cast_to=object,
                body={**body, "stream": True},
                stream=True,
                stream_cls=AsyncStream[object],
            )
        except openai.OpenAIError as err:
            raise classify(err) from err

    async def _stream_responses(self, request: ModelRequest) -> AsyncIterator[Chunk]:
        stream = await self._open("/responses", responses_params(request, store=self.store))
        headers = _lower(stream.response.headers)
        final: dict[str, Any] | None = None
        try:
            async for event in stream:
                kind = event.get("type")
                if kind == "response.output_text.delta":
                    yield TextDelta(event["delta"])
                elif kind in ("response.completed", "response.incomplete"):
                    final = event["response"]
                elif kind == "response.failed":
                    error = event.get("response", {}).get("error") or {}
                    message = f"{error.get('code')}: {error.get('message', 'the response failed')}"
                    raise ProviderError(message, retryable=True, headers=headers)
                elif kind == "error":
                    message = f"{event.get('code')}: {event.get('message')}"
                    raise ProviderError(message, retryable=True, headers=headers)
        except openai.OpenAIError as err:
            raise classify(err) from err
        finally:
            await stream.close()
        if final is None:
            raise ProviderError("the stream ended before the response completed", headers=headers)
        yield response_from_json(final, request.model, headers)

    async def _stream_chat(self, request: ModelRequest) -> AsyncIterator[Chunk]:
        stream = await self._open("/chat/completions", chat_params(request))
        headers = _lower(stream.response.headers)
        answer = ChatAnswer(request.model)
        try:
            async for chunk in stream:
                for delta in answer.feed(chunk):
                    yield delta
        except openai.OpenAIError as err:
            raise classify(err) from err
        finally:
            await stream.close()
        if not answer.finished:
            raise ProviderError("the stream ended before the completion finished", headers=headers)
        yield answer.response(headers)


def _http_client(timeout: float | None) -> Any:
    """The SDK's aiohttp transport where the extra is installed, else its httpx default."""
    try:
        client = openai.DefaultAioHttpClient(timeout=timeout)
    except (AttributeError, RuntimeError):  # an older SDK, or no aiohttp
        return None
    return client


def _json(raw: Any) -> dict[str, Any]:
    payload = json.loads(raw.http_response.content)
    if not isinstance(payload, dict):
        raise ProviderError(f"the upstream answered {type(payload).__name__}, not an object")
    return payload
