"""A gateway request costs two store operations, the budget hold and its settlement: the
caller's workspace, its API key and the provider's state come from caches (issue 14)."""

from __future__ import annotations

import collections
import inspect
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from gateway_support import gateway_settings
from openai import OpenAI

from core_support import ServerThread
from mezzo.server.auth import create_key
from mezzo.stub.server import StubServer


@pytest.fixture
def counted(tmp_path: Path, stub: StubServer) -> Iterator[tuple[OpenAI, collections.Counter[str]]]:
    with ServerThread(gateway_settings(tmp_path / "data", stub), workers=False) as server:
        key = server.call(create_key(server.mezzo.store, "alpha"))
        calls: collections.Counter[str] = collections.Counter()
        store = server.mezzo.store
        inner = getattr(store, "inner", store)
        for name, method in inspect.getmembers(inner, inspect.iscoroutinefunction):
            if not name.startswith("_"):
                setattr(inner, name, _counting(calls, name, method))
        with OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0) as client:
            yield client, calls


def _counting(
    calls: collections.Counter[str], name: str, method: Callable[..., Any]
) -> Callable[..., Any]:
    async def counting(*args: Any, **kwargs: Any) -> Any:
        calls[name] += 1
        return await method(*args, **kwargs)

    return counting


def test_two_store_operations_per_request(
    counted: tuple[OpenAI, collections.Counter[str]],
) -> None:
    client, calls = counted
    messages: list[Any] = [{"role": "user", "content": "hi"}]
    client.chat.completions.create(model="stub-model", messages=messages)  # first use
    calls.clear()
    for _ in range(10):
        client.chat.completions.create(model="stub-model", messages=messages)
        client.responses.create(model="stub-model", input="hi", store=False)
    assert (calls["hold"], calls["settle"]) == (20, 20)
    others = {name: n for name, n in calls.items() if name not in ("hold", "settle")}
    # At most a refresh of a cached record per second (workspace, key, provider block).
    assert sum(others.values()) <= 6, others
    assert calls["kv_get"] <= 3, others
