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

import aiohttp
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
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._headers: dict[str, str] = {}

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
        await self.client.close()

    def stream(self, request: ModelRequest) -> AsyncIterator[Chunk]:
        if self.api == "responses":
            return self._stream_responses(request)
        return self._stream_chat(request)

    async def complete(self, request: ModelRequest) -> ModelResponse:
        """The whole answer in one non-streamed request (no deltas to relay).

        Sent with aiohttp directly rather than through the SDK: building a request through the
        SDK's options, headers and auth layers costs several times the transport itself (about
        70 % of the gateway's CPU per short call, measured). Streams still use the SDK."""
        if self.api == "responses":
            path, body = "/responses", responses_params(request, store=self.store)
        else:
            path, body = "/chat/completions", chat_params(request, stream=False)
        status, headers, payload = await self._post(path, {**body, "stream": False})
        if status >= 400:
            raise _status_error(status, headers, payload)
        answer = _json(payload)
        if self.api == "responses":
            return response_from_json(answer, request.model, headers)
        chat = ChatAnswer(request.model)
        chat.take(answer)
        return chat.response(headers)

    async def _post(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        session = self._session
        if session is None or session.closed:
            session = self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300),
            )
            client = self.client
            self._headers = {
                **{k: v for k, v in client.default_headers.items() if isinstance(v, str)},
                **client.auth_headers,
                "Content-Type": "application/json",
            }
        url = str(self.client.base_url).rstrip("/") + path
        try:
            async with session.post(url, data=json.dumps(body), headers=self._headers) as answer:
                return answer.status, _lower(answer.headers), await answer.read()
        except TimeoutError as error:
            raise ProviderError(f"timeout: {error}", retryable=True) from error
        except (aiohttp.ClientError, OSError) as error:
            raise ProviderError(f"connection error: {error}", retryable=True) from error

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


def _json(raw: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(raw)
    except ValueError:
        raise ProviderError(f"the upstream answered something not JSON: {raw[:200]!r}") from None
    if not isinstance(payload, dict):
        raise ProviderError(f"the upstream answered {type(payload).__name__}, not an object")
    return payload


def _status_error(status: int, headers: dict[str, str], payload: bytes) -> ProviderError:
    """An upstream's error answer, classified as `classify` does the SDK's errors."""
    try:
        error = json.loads(payload).get("error") or {}
        message = error.get("message") if isinstance(error, dict) else str(error)
    except (ValueError, AttributeError):
        message = payload[:200].decode(errors="replace")
    return ProviderError(
        f"{status}: {message}",
        status=status,
        retry_after=parse_retry_after(headers),
        retryable=status in RETRYABLE_STATUSES or status >= 500,
        headers=headers,
    )
