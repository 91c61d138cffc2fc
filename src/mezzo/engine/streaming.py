"""Stream a model's answer: text deltas go out live, and a cancel of the run stops the stream."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

from mezzo import tracing
from mezzo.engine.state import RunState
from mezzo.errors import Cancelled
from mezzo.protocol import Event
from mezzo.providers.base import ModelRequest, ModelResponse, Provider, ProviderError, TextDelta
from mezzo.store.base import Store

T = TypeVar("T")
CANCEL_CHECK_S = 0.2


async def stream_response(
    store: Store, provider: Provider, provider_name: str, state: RunState, request: ModelRequest
) -> ModelResponse:
    """The provider's final response; raises Cancelled (with the output streamed so far)
    when the run is cancelled meanwhile, ProviderError when the provider fails."""
    output_tokens = 0

    async def consume() -> ModelResponse:
        nonlocal output_tokens
        async for chunk in provider.stream(request):
            if isinstance(chunk, TextDelta):
                output_tokens += 1
                await store.publish_live(
                    Event(
                        seq=None,
                        workspace=state.workspace,
                        run=state.run,
                        type="delta",
                        ts=time.time(),
                        data={"text": chunk.text},
                    )
                )
            else:
                return chunk
        raise ProviderError("the provider ended the stream without a response", retryable=True)

    streaming = asyncio.create_task(
        _traced(consume(), "mezzo.provider", provider=provider_name, model=request.model)
    )
    watching = asyncio.create_task(_watch_for_cancel(store, state))
    try:
        done, _ = await asyncio.wait({streaming, watching}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watching.cancel()
        if not streaming.done():
            streaming.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await watching
    if streaming in done:
        return streaming.result()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await streaming
    raise Cancelled(output_tokens)


async def _traced(coroutine: Awaitable[T], name: str, **attributes: Any) -> T:
    with tracing.span(name, **attributes):
        return await coroutine


async def _watch_for_cancel(store: Store, state: RunState) -> None:
    """Returns when the run was cancelled (or otherwise moved on) by someone else."""
    while True:
        await asyncio.sleep(CANCEL_CHECK_S)
        if await store.run_version(state.run) != state.version:
            newer = await store.read(state.workspace, state.last_seq, ["cancelled"], 1, state.run)
            if newer:
                return
