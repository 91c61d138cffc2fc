"""What the backend the governor chose does with a request's options, decided before the call.

- An OpenAI-compatible backend of the request's own API gets every field mezzo does not
  interpret, as it is; one of the other API gets the fields that mean the same there, and the
  rest are *dropped*: named in the `x-mezzo-dropped-params` header and a warning log.
- The local model takes none of them (dropped), and enforces structured output and tool
  arguments with its grammar.
- `stop` is passed to a Chat Completions backend and enforced here for the others.
- `n` > 1 needs a Chat Completions backend; elsewhere the request is refused (400).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Protocol

from mezzo.gateway.errors import WireError
from mezzo.gateway.stops import stop_at
from mezzo.governor.governor import Admission
from mezzo.providers.base import Chunk, ModelRequest, ModelResponse, WireApi
from mezzo.providers.openai import wire_api
from mezzo.providers.openai_wire.requests import forwarded

DROPPED_HEADER = "x-mezzo-dropped-params"


class Streamer(Protocol):
    """What answers a call: a provider, or a connection's own upstream session."""

    def stream(self, request: ModelRequest) -> AsyncIterator[Chunk]: ...


@dataclass(frozen=True, slots=True)
class Backend:
    provider: Streamer
    # The OpenAI API it speaks; None for a backend that is not an OpenAI API (the local model).
    api: WireApi | None
    # Fields of the request it cannot take, said to the client in DROPPED_HEADER.
    dropped: tuple[str, ...]

    def headers(self) -> dict[str, str]:
        return {DROPPED_HEADER: ",".join(self.dropped)} if self.dropped else {}


def backend_for(provider: Streamer, request: ModelRequest, model_key: str) -> Backend:
    """The backend, or a WireError for an option it cannot honour."""
    api = wire_api(provider)
    if request.n > 1 and api != "chat":
        raise WireError(
            400,
            f"n={request.n} cannot be honoured by {model_key}: only a Chat Completions backend "
            "answers several choices at once",
            "unsupported_value",
            "n",
        )
    return Backend(provider, api, tuple(forwarded(request, api)[1]))


def answer(
    backend: Backend, admission: Admission, request: ModelRequest, *, streamed: bool
) -> AsyncIterator[Chunk]:
    """The backend's chunks: streamed, or (`streamed` False, where the backend can) the whole
    answer in one non-streamed request; cut at the `stop` sequences it does not take itself."""
    complete = getattr(backend.provider, "complete", None)
    if not streamed and complete is not None:
        chunks: AsyncIterator[Chunk] = _one(complete(request))
    else:
        chunks = backend.provider.stream(request)
    if request.stop and backend.api != "chat":
        return stop_at(chunks, request.stop, admission.decision.model)
    return chunks


async def _one(whole: Awaitable[ModelResponse]) -> AsyncIterator[Chunk]:
    yield await whole
