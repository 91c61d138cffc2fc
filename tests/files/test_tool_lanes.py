"""One tenant's slow synchronous tools cannot take every thread: they run in a pool of their
own, at most `per_tenant` at once, so another tenant's tool call still runs."""

from __future__ import annotations

import asyncio
import threading

from mezzo.tools.context import ToolContext
from mezzo.tools.lanes import tool_lanes
from mezzo.tools.registry import ToolRegistry


async def test_a_tenant_flooding_slow_tools_leaves_room_for_another() -> None:
    release = threading.Event()
    running: dict[str, int] = {"a": 0, "b": 0}
    most = {"a": 0}
    lock = threading.Lock()

    def slow(context: ToolContext, label: str) -> str:
        with lock:
            running[context.tenant] += 1
            most["a"] = max(most["a"], running["a"])
        try:
            if context.tenant == "a":
                release.wait(60)
            return f"{label} done"
        finally:
            with lock:
                running[context.tenant] -= 1

    registry = ToolRegistry()
    tool = registry.register(slow)
    assert "context" not in tool.decl.parameters["properties"]  # the model cannot set it
    flood = [
        asyncio.create_task(tool.call({"label": f"a{i}"}, ToolContext("a", "wa")))
        for i in range(12)
    ]
    try:
        for _ in range(3000):  # until the tenant's share of the pool is busy
            if running["a"] >= tool_lanes().per_tenant:
                break
            await asyncio.sleep(0.01)
        other = await asyncio.wait_for(tool.call({"label": "b"}, ToolContext("b", "wb")), 30)
        assert other == "b done"
        assert most["a"] == tool_lanes().per_tenant
    finally:
        release.set()
    assert sorted(await asyncio.gather(*flood)) == sorted(f"a{i} done" for i in range(12))
