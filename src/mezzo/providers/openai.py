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
from typing import Any, Literal

import openai
from openai import AsyncOpenAI, AsyncStream

from mezzo.providers.base import (
    Chunk,
    Message,
    ModelRequest,
    ModelResponse,
    ProviderError,
    TextDelta,
    ToolCall,
    Usage,
)

Api = Literal["responses", "chat"]

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


def _arguments(raw: str, name: str) -> dict[str, Any]:
    try:
        arguments = json.loads(raw or "{}")
    except json.JSONDecodeError as err:
        raise ProviderError(
            f"the model sent invalid JSON arguments for {name}: {err.msg}"
        ) from None
    if not isinstance(arguments, dict):
        raise ProviderError(f"the model sent arguments for {name} that are not a JSON object")
    return arguments


# -- request mapping (pure) ----------------------------------------------------------------------


def responses_input(messages: tuple[Message, ...]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "tool":
            items.append(
                {
                    "type": "function_call_output",
                    "call_id": message.call_id,
                    "output": message.content,
                }
            )
            continue
        if message.content or not message.tool_calls:
            items.append({"type": "message", "role": message.role, "content": message.content})
        for call in message.tool_calls:
            items.append(
                {
                    "type": "function_call",
                    "call_id": call.call_id,
                    "name": call.name,
                    "arguments": json.dumps(call.arguments),
                }
            )
    return items


def chat_messages(messages: tuple[Message, ...]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "tool":
            result.append(
                {"role": "tool", "tool_call_id": message.call_id, "content": message.content}
            )
            continue
        entry: dict[str, Any] = {"role": message.role, "content": message.content}
        if message.tool_calls:
            entry["content"] = message.content or None
            entry["tool_calls"] = [
                {
                    "id": call.call_id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
                }
                for call in message.tool_calls
            ]
        result.append(entry)
    return result


def _tool_choice(request: ModelRequest, api: Api) -> Any:
    if request.tool_choice in ("auto", "required", "none"):
        return request.tool_choice
    if api == "responses":
        return {"type": "function", "name": request.tool_choice}
    return {"type": "function", "function": {"name": request.tool_choice}}


def responses_params(request: ModelRequest, *, store: bool) -> dict[str, Any]:
    params: dict[str, Any] = {
        "model": request.model,
        "input": responses_input(request.messages),
        "store": store,
    }
    if request.tools:
        params["tools"] = [
            {
                "type": "function",
                "name": tool.name,
                "description": tool.description,
                "parameters": tool.parameters,
                "strict": False,
            }
            for tool in request.tools
        ]
        params["tool_choice"] = _tool_choice(request, "responses")
    if request.max_output_tokens is not None:
        params["max_output_tokens"] = request.max_output_tokens
    if request.temperature is not None:
        params["temperature"] = request.temperature
    return params


def chat_params(request: ModelRequest) -> dict[str, Any]:
    params: dict[str, Any] = {
        "model": request.model,
        "messages": chat_messages(request.messages),
        "stream_options": {"include_usage": True},
    }
    if request.tools:
        params["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": tool.name,
                    "description": tool.description,
                    "parameters": tool.parameters,
                },
            }
            for tool in request.tools
        ]
        params["tool_choice"] = _tool_choice(request, "chat")
    if request.max_output_tokens is not None:
        params["max_completion_tokens"] = request.max_output_tokens
    if request.temperature is not None:
        params["temperature"] = request.temperature
    return params


# -- the provider --------------------------------------------------------------------------------


class OpenAIProvider:
    """A `Provider` for OpenAI's Responses API or any Chat Completions server.

    `base_url` and `api_key` default to `OPENAI_BASE_URL` and `OPENAI_API_KEY`; a server of
    your own (a `base_url`) may need no key, so a placeholder is sent then.
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
            client = AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=timeout)
        self.client = client

    async def aclose(self) -> None:
        await self.client.close()

    def stream(self, request: ModelRequest) -> AsyncIterator[Chunk]:
        if self.api == "responses":
            return self._stream_responses(request)
        return self._stream_chat(request)

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
        yield _from_response(final, request.model, headers)

    async def _stream_chat(self, request: ModelRequest) -> AsyncIterator[Chunk]:
        stream = await self._open("/chat/completions", chat_params(request))
        headers = _lower(stream.response.headers)
        model = request.model
        texts: list[str] = []
        calls: dict[int, dict[str, str]] = {}
        finish_reason: str | None = None
        usage: Usage | None = None
        try:
            async for chunk in stream:
                model = chunk.get("model") or model
                if chunk.get("usage"):
                    usage = _usage(chunk["usage"], "prompt_tokens", "completion_tokens")
                for choice in chunk.get("choices") or ():
                    delta = choice.get("delta") or {}
                    if content := delta.get("content"):
                        texts.append(content)
                        yield TextDelta(content)
                    for call in delta.get("tool_calls") or ():
                        slot = calls.setdefault(
                            call.get("index", 0), {"id": "", "name": "", "arguments": ""}
                        )
                        slot["id"] = call.get("id") or slot["id"]
                        function = call.get("function") or {}
                        slot["name"] += function.get("name") or ""
                        slot["arguments"] += function.get("arguments") or ""
                    if choice.get("finish_reason") is not None:
                        finish_reason = choice["finish_reason"]
        except openai.OpenAIError as err:
            raise classify(err) from err
        finally:
            await stream.close()
        if finish_reason is None:
            raise ProviderError("the stream ended before the completion finished", headers=headers)
        tool_calls = tuple(
            ToolCall(slot["id"], slot["name"], _arguments(slot["arguments"], slot["name"]))
            for _, slot in sorted(calls.items())
        )
        yield ModelResponse(
            model=model,
            text="".join(texts),
            tool_calls=tool_calls,
            usage=usage,
            finish_reason=finish_reason,
            headers=headers,
        )


def _usage(raw: dict[str, Any], input_key: str, output_key: str) -> Usage | None:
    try:
        return Usage(int(raw[input_key]), int(raw[output_key]))
    except (KeyError, TypeError, ValueError):
        return None


def _from_response(response: dict[str, Any], model: str, headers: dict[str, str]) -> ModelResponse:
    """A final Responses API object (as JSON) to a ModelResponse."""
    texts: list[str] = []
    tool_calls: list[ToolCall] = []
    for item in response.get("output") or ():
        if item.get("type") == "function_call":
            name = item.get("name", "")
            tool_calls.append(
                ToolCall(item.get("call_id", ""), name, _arguments(item.get("arguments", ""), name))
            )
        elif item.get("type") == "message":
            texts += [
                part.get("text", "")
                for part in item.get("content") or ()
                if part.get("type") == "output_text"
            ]
    usage = (
        _usage(response["usage"], "input_tokens", "output_tokens")
        if response.get("usage")
        else None
    )
    if response.get("status") == "incomplete":
        reason = (response.get("incomplete_details") or {}).get("reason") or "incomplete"
        finish_reason = "length" if reason == "max_output_tokens" else reason
    else:
        finish_reason = "tool_calls" if tool_calls else "stop"
    return ModelResponse(
        model=response.get("model") or model,
        text="".join(texts),
        tool_calls=tuple(tool_calls),
        usage=usage,
        finish_reason=finish_reason,
        headers=headers,
    )
