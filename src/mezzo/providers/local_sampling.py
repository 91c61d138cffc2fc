"""How the embedded model picks its tokens and where an answer ends.

A 135M model decoding greedily with nothing against repetition falls into a loop within a few
dozen tokens ("la femme au martyre, la femme au martyre, …" until the output cap, minutes of
CPU). The local route's defaults, measured with `bench/local_model_bench.py` (figures in
docs/benchmarks.md): greedy decoding (the best answers at this size, and the same prompt gives
the same answer) with a repetition penalty of 1.2 over the last 64 tokens, and a modest output
cap. A request's own temperature samples with top-k/top-p/min-p, seeded.
Grammar-constrained output (tool calls, JSON) is decoded greedily without the penalty: JSON
repeats its punctuation by design, and the grammar already bounds its shape.

An answer ends at the model's end-of-generation token, at the chat template's end-of-turn
token, or, where the vocabulary has no such token (a template that is not the model's own),
at the end-of-turn text — held back while it may still be arriving, never streamed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Sampling:
    """Sampling for free text on the local route. `temperature` of a request overrides ours."""

    temperature: float = 0.0
    top_k: int = 40
    top_p: float = 0.9
    min_p: float = 0.05
    repeat_penalty: float = 1.2
    max_output_tokens: int = 512

    def text(self, temperature: float | None) -> dict[str, Any]:
        """Keyword arguments of `Llama.generate` for free text."""
        return {
            "temp": self.temperature if temperature is None else temperature,
            "top_k": self.top_k,
            "top_p": self.top_p,
            "min_p": self.min_p,
            "repeat_penalty": self.repeat_penalty,
        }

    def constrained(self, temperature: float | None) -> dict[str, Any]:
        """Keyword arguments of `Llama.generate` under a grammar: greedy unless asked."""
        return {"temp": 0.0 if temperature is None else temperature, "repeat_penalty": 1.0}

    def output_cap(self, requested: int | None) -> int:
        """The route's cap binds a request's own `max_output_tokens` too."""
        return min(requested or self.max_output_tokens, self.max_output_tokens)


@dataclass(frozen=True, slots=True)
class TurnEnd:
    """What closes an assistant turn in the chat template: its text, and its token when the
    vocabulary has it as one (then the token is compared, not the text)."""

    text: str
    token: int | None


class TextStop:
    """Streams text up to `marker`: holds back what may be the marker's beginning, and reports
    `done` once the marker has arrived (the marker itself is never returned)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker
        self.held = ""
        self.done = False

    def feed(self, piece: str) -> str:
        """The part of `piece` (with what was held) that can be shown now."""
        text = self.held + piece
        at = text.find(self.marker)
        if at >= 0:
            self.held, self.done = "", True
            return text[:at]
        keep = next(
            (n for n in range(min(len(self.marker) - 1, len(text)), 0, -1)
             if self.marker.startswith(text[-n:])),
            0,
        )  # fmt: skip
        self.held = text[len(text) - keep :]
        return text[: len(text) - keep]

    def flush(self) -> str:
        """What was held back, at the end of generation (it was not the marker after all)."""
        held, self.held = self.held, ""
        return held
