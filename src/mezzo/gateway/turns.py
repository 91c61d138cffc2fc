"""One Responses turn: resolve the model to a route, put the conversation together (a previous
response's transcript plus the new items), pass the governor, stream from the backend while
writing Responses events, then settle the usage once and store the response when `store` is
true.

A turn in flight is registered under its response id with its tenant, so `GET` and `cancel`
find it for that tenant only.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from mezzo.errors import Cancelled
from mezzo.gateway.backends import Backend, Streamer
from mezzo.gateway.conversations import Conversation
from mezzo.gateway.writer import ResponseWriter, new_response_id
from mezzo.providers.base import Chunk, Message, ModelResponse
from mezzo.providers.openai_wire.requests import ResponsesRequest

UpstreamFor = Callable[[str], Streamer | None]
T = TypeVar("T")


@dataclass(slots=True)
class Turn:
    """One response being produced: whose it is, its writer, its fate, and the conversation
    it leaves."""

    tenant: str
    body: ResponsesRequest
    id: str = field(default_factory=new_response_id)
    writer: ResponseWriter | None = None
    conversation: Conversation | None = None
    backend: Backend | None = None
    failed: bool = False
    cancel: asyncio.Event = field(default_factory=asyncio.Event)
    settling: asyncio.Future[Any] | None = None
    # The task awaiting a whole (non-streamed) answer, for `stop` to cancel.
    waiting: asyncio.Task[Any] | None = None

    def stop(self) -> None:
        """Cancel the turn: a stream ends at its next chunk, a whole answer at once."""
        self.cancel.set()
        if self.waiting is not None:
            self.waiting.cancel()

    async def awaited(self, answer: Awaitable[T]) -> T:
        """`answer`, or Cancelled when `stop` cancels it (other cancellations pass through)."""
        self.waiting = asyncio.current_task()
        try:
            return await answer
        except asyncio.CancelledError:
            task = self.waiting
            if not self.cancel.is_set() or task is None or task.cancelling() > 1:
                raise
            task.uncancel()
            raise Cancelled from None
        finally:
            self.waiting = None

    def conclude(
        self, workspace: str, transcript: tuple[Message, ...], result: ModelResponse | None
    ) -> Conversation:
        """The conversation the turn leaves: its transcript and the answer, if any."""
        assert self.writer is not None
        reply = _reply(result) if result is not None else None
        messages = (*transcript, reply) if reply is not None else transcript
        self.conversation = Conversation(self.tenant, workspace, self.writer.response(), messages)
        return self.conversation

    @property
    def dropped_headers(self) -> dict[str, str]:
        return self.backend.headers() if self.backend is not None else {}


def _reply(result: ModelResponse) -> Message | None:
    if not result.text and not result.tool_calls:
        return None
    return Message("assistant", result.text, result.tool_calls)


class InFlight:
    """Turns being produced in this process, by response id; each seen by its tenant only."""

    def __init__(self) -> None:
        self._turns: dict[str, Turn] = {}

    def add(self, turn: Turn) -> None:
        self._turns[turn.id] = turn

    def discard(self, turn: Turn) -> None:
        self._turns.pop(turn.id, None)

    def ids(self) -> list[str]:
        return list(self._turns)

    def get(self, tenant: str, response_id: str) -> Turn | None:
        turn = self._turns.get(response_id)
        return turn if turn is not None and turn.tenant == tenant else None


async def until_cancelled(
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
