"""The stub's mutable state: configuration, fault RNG, limits, stored responses, counters."""

from __future__ import annotations

import random
import time
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from mezzo.stub.config import StubConfig
from mezzo.stub.limits import RateLimits
from mezzo.stub.transcript import Item

LOG_SIZE = 1000


@dataclass(slots=True)
class StubStats:
    """What reached the stub. `log` keeps the newest requests, one dict each."""

    requests: int = 0
    by_path: Counter[str] = field(default_factory=Counter)
    by_status: Counter[int] = field(default_factory=Counter)
    rate_limited: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    completed: int = 0
    streams_open: int = 0
    streams_completed: int = 0
    streams_disconnected: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    ws_connections: int = 0
    ws_open: int = 0
    log: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=LOG_SIZE))

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "by_path": dict(self.by_path),
            "by_status": {str(status): count for status, count in self.by_status.items()},
            "rate_limited": self.rate_limited,
            "faults": dict(self.faults),
            "completed": self.completed,
            "streams_open": self.streams_open,
            "streams_completed": self.streams_completed,
            "streams_disconnected": self.streams_disconnected,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "ws_connections": self.ws_connections,
            "ws_open": self.ws_open,
            "log": list(self.log),
        }


class StubState:
    def __init__(self, config: StubConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.limits = RateLimits(config.rpm, config.tpm)
        self.stats = StubStats()
        # response id -> the full transcript after that response (input items + its output).
        self.responses: OrderedDict[str, list[Item]] = OrderedDict()

    def configure(self, changes: dict[str, Any]) -> StubConfig:
        """Apply a partial update; on bad input raise pydantic.ValidationError, change nothing.

        Setting `seed` (even to its current value) restarts the fault sequence.
        """
        merged = StubConfig.model_validate({**self.config.model_dump(), **changes})
        if "seed" in changes:
            self.rng = random.Random(merged.seed)
        if (merged.rpm, merged.tpm) != (self.config.rpm, self.config.tpm):
            self.limits = RateLimits(merged.rpm, merged.tpm)
        self.config = merged
        return merged

    def reset(self) -> None:
        self.rng = random.Random(self.config.seed)
        self.limits = RateLimits(self.config.rpm, self.config.tpm)
        # What is open now stays counted, so it can be counted down when it closes.
        self.stats = StubStats(streams_open=self.stats.streams_open, ws_open=self.stats.ws_open)
        self.responses.clear()

    def store_response(self, response_id: str, transcript: list[Item]) -> None:
        limit = self.config.max_stored_responses
        if limit == 0:
            return
        self.responses[response_id] = transcript
        while len(self.responses) > limit:
            self.responses.popitem(last=False)

    def draw_fault(self) -> str | None:
        """The injected fault for this request ("429", "500", "503", "midstream"), or None."""
        config = self.config
        rates = (
            ("429", config.fail_429),
            ("500", config.fail_500),
            ("503", config.fail_503),
            ("midstream", config.fail_midstream),
        )
        if not any(rate for _, rate in rates):
            return None
        draw = self.rng.random()
        for fault, rate in rates:
            if draw < rate:
                return fault
            draw -= rate
        return None

    @staticmethod
    def now() -> float:
        return time.monotonic()
