"""Helpers of the gateway tests: settings, workspaces, ledgers, what reached the stub.

Routes: `default` (stub-model) and `limited` (stub-limited at 1 request a minute, falling back
to stub-small), so fallback routing can be seen without touching the other tests' routes, and
`via-chat`: the stub again, through the `compat` provider, which speaks Chat Completions (the
`openai` provider speaks the Responses API).
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from core_support import ServerThread, core_settings
from mezzo.config import ProviderLimits, RouteConfig
from mezzo.stub.server import StubServer

MODELS = ["stub-model", "stub-small", "stub-limited"]


TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "name": "read",
        "description": "Read a file.",
        "parameters": {"type": "object", "properties": {"path": {"type": "string"}}},
    }
]


def gateway_settings(data_dir: Path, stub: StubServer, **overrides: Any) -> Any:
    values: dict[str, Any] = {
        "routes": {
            "default": RouteConfig(primary="openai:stub-model"),
            "limited": RouteConfig(primary="openai:stub-limited", fallback="openai:stub-small"),
            "via-chat": RouteConfig(primary="compat:stub-model"),
        },
        "compat_base_url": stub.base_url,
        "compat_api_key": "test",
        "provider_limits": {"openai:stub-limited": ProviderLimits(rpm=1)},
        "openai_api": "responses",
        "model_tokenizers": {m: "mezzo-stub" for m in MODELS},
        "max_output_tokens": 256,
    }
    values.update(overrides)
    return core_settings(data_dir, stub, **values)


def make_workspace(server: ServerThread, **config: Any) -> str:
    name = f"t-{uuid.uuid4().hex[:10]}"
    response = httpx.post(
        f"{server.url}/v1/workspaces", json={"id": name, **config}, trust_env=False
    )
    response.raise_for_status()
    return name


def ledger(server: ServerThread, workspace: str) -> dict[str, int]:
    return httpx.get(f"{server.url}/v1/workspaces/{workspace}", trust_env=False).json()["budget"]


def settled_ledger(server: ServerThread, workspace: str, expected_committed: int) -> dict[str, int]:
    """The ledger once it shows `expected_committed` (a WebSocket turn commits its usage while
    the client runs its tool), or as it is after a few seconds; the caller asserts."""
    deadline = time.monotonic() + 5
    while True:
        budget = ledger(server, workspace)
        if budget["committed"] == expected_committed or time.monotonic() > deadline:
            return budget
        time.sleep(0.02)


def workspace_events(server: ServerThread, workspace: str) -> list[dict[str, Any]]:
    return httpx.get(f"{server.url}/v1/workspaces/{workspace}/events", trust_env=False).json()


def upstream_params(stub: StubServer) -> list[dict[str, Any]]:
    """What each request that reached the stub asked besides its conversation."""
    return [entry["params"] for entry in stub.stats()["log"]]
