"""What a gateway WebSocket connection keeps between its turns.

The connection keeps its most recent response (transcript, workspace), so the next turn sends
only new items plus `previous_response_id`, even with `store: false`; a failed turn forgets it.
Where the route's backend speaks the Responses API, the connection holds its own upstream
WebSocket (`providers/openai_ws.py`). The last turn's usage settlement and store write run
while the client runs its tool, as does a re-read of the workspace for the next admission;
the next turn awaits both first.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import ValidationError

from mezzo.gateway.callers import Caller
from mezzo.gateway.conversations import Conversation
from mezzo.gateway.errors import no_previous_response
from mezzo.gateway.gateway import Gateway
from mezzo.logs import get_logger
from mezzo.providers.base import Message
from mezzo.providers.openai import OpenAIProvider
from mezzo.providers.openai_wire.errors import refusal
from mezzo.providers.openai_wire.requests import ResponsesRequest
from mezzo.providers.openai_ws import UpstreamSession, speaks_responses_ws

log = get_logger("mezzo.gateway")

Send = Callable[[dict[str, Any]], Awaitable[None]]


class Session:
    def __init__(
        self,
        gateway: Gateway,
        caller: Caller,
        workspace: str | None,
        priority: str | None,
    ) -> None:
        self.gateway = gateway
        self.caller = caller
        self._workspace = workspace
        self._priority = priority
        self.latest: Conversation | None = None
        self.settling: asyncio.Future[Any] | None = None
        self.refreshing: asyncio.Future[Caller] | None = None
        self.upstreams: dict[str, UpstreamSession] = {}

    def upstream(self, provider_name: str) -> UpstreamSession | None:
        """This connection's own WebSocket to the backend, where it speaks one."""
        session = self.upstreams.get(provider_name)
        if session is None:
            provider = self.gateway.mezzo.providers.get(provider_name)
            if not speaks_responses_ws(provider):
                return None
            assert isinstance(provider, OpenAIProvider)
            session = self.upstreams[provider_name] = UpstreamSession(provider)
        return session

    async def run(self, raw: dict[str, Any], send: Send) -> None:
        """One turn from a `response.create` body, its events given to `send`. Raises
        WireError (or MezzoError) before the first event when the turn is refused."""
        await self._settled()
        caller = await self._ready_caller()
        try:
            try:
                body = ResponsesRequest.model_validate(raw)
            except ValidationError as error:
                raise refusal(error) from None
            history = await self._history(body.previous_response_id, caller)
        except BaseException:
            self.latest = None
            self._prepare_next()
            raise
        self.latest = None
        try:
            turn = self.gateway.new_turn(caller.tenant, body)
            async for event in self.gateway.respond(
                caller, turn, history, settle_later=True, upstream=self.upstream
            ):
                await send(event)
        finally:
            self._prepare_next()
        self.settling = turn.settling
        if not turn.failed and turn.conversation is not None:
            self.latest = turn.conversation

    async def _history(self, previous: str | None, caller: Caller) -> tuple[Message, ...]:
        if previous is None:
            return ()
        latest = self.latest
        if latest is not None and latest.id == previous:
            return latest.messages
        found = await self.gateway.stored.get(caller.tenant, previous)
        if found is None:
            raise no_previous_response(previous)
        return found.messages

    async def _settled(self) -> None:
        """The last turn's usage settlement and store write (overlapped with the client's
        tool)."""
        settling, self.settling = self.settling, None
        if settling is not None:
            try:
                await settling
            except Exception:
                log.exception("gateway: settling a turn failed")

    async def _ready_caller(self) -> Caller:
        if self.refreshing is not None:
            with contextlib.suppress(Exception):
                self.caller = await self.refreshing
            self.refreshing = None
        return self.caller

    def _prepare_next(self) -> None:
        """Overlap with the client's tool: re-read the workspace for the next admission."""
        self.refreshing = asyncio.ensure_future(
            self.gateway.caller(self.caller.tenant, self._workspace, self._priority)
        )

    async def close(self) -> None:
        refreshing, self.refreshing = self.refreshing, None
        if refreshing is not None and not refreshing.done():
            refreshing.cancel()
            with contextlib.suppress(BaseException):
                await refreshing
        await self._settled()
        for session in self.upstreams.values():
            await session.aclose()
