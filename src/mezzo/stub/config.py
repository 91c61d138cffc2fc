"""Settings of the stub LLM server; all of them can be changed at run time."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

Rate = Annotated[float, Field(ge=0.0, le=1.0)]


class StubConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    models: list[str] = Field(default_factory=lambda: ["stub-model"], min_length=1)
    # Time to first token, in milliseconds (also the delay of a non-streamed answer).
    latency_ms: float = Field(0.0, ge=0.0)
    # Output pace; None answers as fast as the server can.
    tokens_per_second: float | None = Field(None, gt=0.0)
    # Limits per API key; None means unlimited (and no x-ratelimit-* headers for that limit).
    rpm: int | None = Field(None, gt=0)
    tpm: int | None = Field(None, gt=0)
    # Share of requests answered with an injected error, drawn from a seeded RNG.
    fail_429: Rate = 0.0
    fail_500: Rate = 0.0
    fail_503: Rate = 0.0
    # Share of streams that break off halfway with an error event (a non-streamed request: 500).
    fail_midstream: Rate = 0.0
    # `retry-after` sent with an injected 429.
    fault_retry_after_s: float = Field(1.0, ge=0.0)
    seed: int = 0
    # Pads or cuts every text reply to exactly this many tokens (for load tests).
    reply_tokens: int | None = Field(None, gt=0)
    # When set, requests must carry `Authorization: Bearer <api_key>` or get 401.
    api_key: str | None = None
    # A WebSocket connection refuses new responses after this long (OpenAI: 60 minutes).
    ws_max_connection_s: float = Field(3600.0, gt=0.0)
    # Responses kept for `previous_response_id` (oldest dropped first).
    max_stored_responses: int = Field(1000, ge=0)

    @model_validator(mode="after")
    def _fault_rates_fit(self) -> StubConfig:
        if self.fail_429 + self.fail_500 + self.fail_503 + self.fail_midstream > 1.0:
            raise ValueError("fail_429 + fail_500 + fail_503 + fail_midstream must not exceed 1")
        return self
