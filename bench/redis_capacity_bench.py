"""What one run step costs Redis, for the capacity model in docs/redis.md (issue 18).

K runs of S model steps each (every model call but the last answered by a trivial server-side
tool) go through mezzo embedded in this process (API calls and its worker pool) on the store
URL given, against the stub LLM in a process of its own. Before and after, `INFO commandstats`
and `INFO cpu` are read from every primary (one server: that one), and the deltas summed:

- steps/s: K·S divided by the wall time from the first submit to the last `completed`;
- Redis commands per step: every command the primaries ran, script-internal calls included
  (`EVALSHA`/`EVAL` are also shown on their own: one is one round trip's worth of work);
- Redis CPU per step (user + sys, all primaries, less what they burn idle, measured for 3 s
  before: a Cluster's bus and cron are not per step): its inverse is the steps/s one Redis
  core sustains, the figure the capacity model divides by.

    .venv/bin/python bench/redis_capacity_bench.py --store redis://127.0.0.1:6379/0
    .venv/bin/python bench/redis_capacity_bench.py --store redis+cluster://127.0.0.1:7000

Use a store nobody else is writing to while it runs: the deltas count every client.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from step_overhead_bench import noop, stub_process, task  # noqa: E402

from core_support import core_settings  # noqa: E402
from mezzo import keys  # noqa: E402
from mezzo.logs import configure_logging  # noqa: E402
from mezzo.protocol import CreateWorkspace, SubmitRun, ToolDecl  # noqa: E402
from mezzo.service import Mezzo  # noqa: E402
from mezzo.store.redis import RedisStore  # noqa: E402
from mezzo.tools.registry import ToolRegistry  # noqa: E402

IDLE_S = 3.0
IGNORED = {"info", "ping", "cluster", "client", "config", "command", "hello"}


async def primaries_stats(store: RedisStore) -> tuple[Counter[str], list[float], int]:
    """(calls per command summed over the primaries, each primary's CPU seconds, primaries)."""
    client: Any = store._client
    calls: Counter[str] = Counter()
    cpu: list[float] = []
    nodes = client.get_primaries() if store.cluster else [None]
    for node in nodes:
        target = {"target_nodes": node} if node is not None else {}
        stats = await client.info("commandstats", **target)
        usage = await client.info("cpu", **target)
        for name, fields in stats.items():
            command = name.removeprefix("cmdstat_").split("|")[0]
            if command not in IGNORED:
                calls[command] += int(fields["calls"])
        cpu.append(float(usage["used_cpu_user"]) + float(usage["used_cpu_sys"]))
    return calls, cpu, len(nodes)


async def main(store_url: str, runs: int, steps: int, workspaces: int, concurrency: int) -> None:
    configure_logging("warning", "console")
    with tempfile.TemporaryDirectory() as tmp, stub_process() as stub:
        tools = ToolRegistry()
        tools.register(noop)
        settings = core_settings(Path(tmp), stub, store=store_url, concurrency=concurrency)
        mezzo = Mezzo(settings, tools=tools)
        await mezzo.start()
        store = getattr(mezzo.store, "inner", mezzo.store)  # under the metering wrapper
        assert isinstance(store, RedisStore), "a Redis store URL, please"
        try:
            names = [f"cap-{uuid.uuid4().hex[:6]}-{i}" for i in range(workspaces)]
            for name in names:
                await mezzo.create_workspace(
                    "local",
                    CreateWorkspace(
                        id=name, budget_tokens=10**12, tools=[ToolDecl(name="noop", side="server")]
                    ),
                )
            # What the primaries burn doing nothing (cron, cluster bus): taken off below.
            _, idle_before, _ = await primaries_stats(store)
            await asyncio.sleep(IDLE_S)
            _, idle_after, _ = await primaries_stats(store)
            idle_per_s = (sum(idle_after) - sum(idle_before)) / IDLE_S
            before, cpu_before, primaries = await primaries_stats(store)
            started = time.perf_counter()
            per_workspace = Counter(names[i % workspaces] for i in range(runs))
            for i in range(runs):
                await mezzo.submit_run("local", names[i % workspaces], SubmitRun(input=task(steps)))
            await asyncio.gather(
                *(_completed(store, name, count) for name, count in per_workspace.items())
            )
            elapsed = time.perf_counter() - started
            after, cpu_after, _ = await primaries_stats(store)
            partitions = store.partitions
        finally:
            await mezzo.stop()
    total_steps = runs * steps
    delta = after - before
    commands = sum(delta.values())
    scripts = delta["evalsha"] + delta["eval"]
    shares = [after_ - before_ for after_, before_ in zip(cpu_after, cpu_before, strict=True)]
    busy = sum(shares)
    cpu = busy - idle_per_s * elapsed
    print(f"store {store.target.where}: {primaries} primaries, {partitions} queue partitions")
    print(f"{runs} runs x {steps} model steps over {workspaces} workspaces, concurrency {concurrency}")
    print(f"steps/s {total_steps / elapsed:8.1f}   ({elapsed:.1f} s wall)")
    print(
        f"per step: {commands / total_steps:6.1f} Redis commands (scripts' inner calls included), "
        f"{scripts / total_steps:5.1f} scripts, {cpu / total_steps * 1e6:6.0f} us Redis CPU "
        f"({busy / total_steps * 1e6:.0f} us before taking off idle {idle_per_s * 1e3:.1f} ms/s)"
    )
    print(f"steps/s one Redis core sustains at that cost: {total_steps / cpu:8.0f}")
    spread = ", ".join(f"{share / busy:.0%}" for share in shares)
    print(f"Redis CPU per primary (share of the busy total): {spread}")
    print("top commands per step:")
    for command, n in delta.most_common(12):
        print(f"  {command:<16} {n / total_steps:6.2f}")


async def _completed(store: RedisStore, name: str, count: int) -> None:
    key = keys.workspace_key("local", name)
    done = 0
    async for event in store.tail(key, 0, ["completed", "failed"]):
        assert event.type == "completed", event
        done += 1
        if done == count:
            return


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", required=True, help="redis://… or redis+cluster://…")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--workspaces", type=int, default=16)
    parser.add_argument("--concurrency", type=int, default=32)
    arguments = parser.parse_args()
    asyncio.run(
        main(
            arguments.store,
            arguments.runs,
            arguments.steps,
            arguments.workspaces,
            arguments.concurrency,
        )
    )
