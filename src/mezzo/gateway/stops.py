"""Chat Completions' `stop` sequences, enforced on a stream from a backend that takes none.

The answer ends before the first stop sequence it contains (the sequence itself left out), and
the backend's stream is closed there, so generation stops. Text that could be the start of a
stop sequence is held back until the next delta says whether it is.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace

from mezzo.providers.base import Chunk, ModelResponse, TextDelta


def cut(text: str, stops: Sequence[str]) -> int | None:
    """Where the first stop sequence in `text` begins, or None."""
    found = [index for stop in stops if (index := text.find(stop)) >= 0]
    return min(found) if found else None


async def stop_at(
    chunks: AsyncIterator[Chunk], stops: Sequence[str], model: str
) -> AsyncIterator[Chunk]:
    """`chunks` up to the first stop sequence; then one `ModelResponse` with the text so far
    (`usage` None: the caller charges what streamed). Only the first answer is cut."""
    held = ""
    said: list[str] = []
    keep = max(len(stop) for stop in stops) - 1
    iterator = chunks.__aiter__()
    try:
        async for chunk in iterator:
            if isinstance(chunk, ModelResponse):
                text = "".join(said) + held if said or held else chunk.text
                at = cut(text, stops)
                if at is not None:
                    text = text[:at]
                rest = text[len("".join(said)) :]
                if rest and (said or held):
                    yield TextDelta(rest)
                reason = "stop" if at is not None else chunk.finish_reason
                yield replace(chunk, text=text, finish_reason=reason)
                return
            if chunk.index != 0:
                yield chunk
                continue
            held += chunk.text
            at = cut(held, stops)
            if at is not None:
                if at:
                    said.append(held[:at])
                    yield TextDelta(held[:at])
                yield ModelResponse(model=model, text="".join(said), finish_reason="stop")
                return
            if len(held) > keep:
                ready, held = held[: len(held) - keep], held[len(held) - keep :]
                said.append(ready)
                yield TextDelta(ready)
    finally:
        with contextlib.suppress(BaseException):
            await iterator.aclose()  # type: ignore[attr-defined]
