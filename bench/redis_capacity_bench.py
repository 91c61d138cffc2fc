"""What one Redis primary sustains: store commands and Redis CPU per run step, per gateway
request and per event delivered, measured on private Redis servers this script starts.

For each unit of work the bench reads `INFO commandstats` and `INFO cpu` of every primary before
and after, so the figures are Redis's own: commands per unit (by command), Redis CPU per unit
(`used_cpu_user + used_cpu_sys`, the whole server: parsing, Lua, replies, network), and from that
how many units one Redis core serves. With `--primaries 3` the same work runs on a 3-primary
Redis Cluster (`redis+cluster://`), and the bench prints each primary's share: the capacity model
says N primaries serve about N times one, which the per-primary figures check. The machine's
Python processes, not Redis, bound the absolute throughput on a small machine: read the Redis
CPU per unit, not steps/s.

    .venv/bin/python bench/redis_capacity_bench.py [--primaries 1|3] [--runs 60] [--steps 10]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "store"))

from redis_process import RedisProcess, free_port  # noqa: E402

from core_support import ServerThread, core_settings  # noqa: E402
from mezzo import keys  # noqa: E402
from mezzo.logs import configure_logging  # noqa: E402
from mezzo.protocol import NewEvent  # noqa: E402
from mezzo.stub.server import StubServer  # noqa: E402


@dataclass
class Snapshot:
    calls: Counter[str]
    usec: Counter[str]
    cpu: list[float]  # per primary, seconds


class Primaries:
    """The primaries of the deployment, read with plain clients (never through mezzo)."""

    def __init__(self, ports: list[int]) -> None:
        self.clients = [redis.Redis(port=p, decode_responses=True) for p in ports]

    def snapshot(self) -> Snapshot:
        calls: Counter[str] = Counter()
        usec: Counter[str] = Counter()
        cpu: list[float] = []
        for client in self.clients:
            for name, stats in client.info("commandstats").items():
                command = name.removeprefix("cmdstat_")
                calls[command] += int(stats["calls"])
                usec[command] += int(stats["usec"])
            info = client.info("cpu")
            cpu.append(float(info["used_cpu_user"]) + float(info["used_cpu_sys"]))
        return Snapshot(calls, usec, cpu)


@contextmanager
def deployment(primaries: int, folder: Path) -> Iterator[tuple[str, list[int]]]:
    """(store URL, primary ports): one plain Redis, or a Redis Cluster of `primaries`."""
    with ExitStack() as stack:
        if primaries == 1:
            server = stack.enter_context(RedisProcess(folder / "single"))
            yield server.url, [server.port]
            return
        nodes = []
        for i in range(primaries):
            bus = ["--cluster-port", str(free_port())]
            options = ["--cluster-enabled", "yes", "--cluster-node-timeout", "2000", *bus]
            nodes.append(stack.enter_context(RedisProcess(folder / f"node{i}", *options)))
        addresses = [f"127.0.0.1:{n.port}" for n in nodes]
        subprocess.run(
            ["redis-cli", "--cluster", "create", *addresses, "--cluster-yes"],
            check=True,
            capture_output=True,
        )
        probe = redis.Redis(port=nodes[0].port, decode_responses=True)
        deadline = time.monotonic() + 20
        while "cluster_state:ok" not in probe.execute_command("CLUSTER", "INFO"):
            if time.monotonic() > deadline:
                raise RuntimeError("the cluster did not come up")
            time.sleep(0.1)
        time.sleep(1.0)  # every node agrees on the slots
        yield "redis+cluster://" + ",".join(addresses), [n.port for n in nodes]


def delta(before: Snapshot, after: Snapshot) -> Snapshot:
    return Snapshot(
        after.calls - before.calls,
        after.usec - before.usec,
        [a - b for a, b in zip(after.cpu, before.cpu, strict=True)],
    )


def report(title: str, units: int, unit: str, used: Snapshot, seconds: float) -> None:
    plural = "deliveries" if unit == "delivery" else f"{unit}s"
    commands = sum(used.calls.values())
    cpu_us = sum(used.cpu) * 1e6 / units
    busiest = ", ".join(
        f"{name} {count / units:.2f}" for name, count in used.calls.most_common(8) if count
    )
    shares = " / ".join(f"{c / max(sum(used.cpu), 1e-9):.0%}" for c in used.cpu)
    print(f"\n{title}: {units} {plural} in {seconds:.1f} s ({units / seconds:.0f}/s here)")
    scripts = used.calls["evalsha"] + used.calls["eval"]
    print(
        f"  Lua scripts per {unit}: {scripts / units:.2f}; commands run (those inside scripts "
        f"included): {commands / units:.2f} ({busiest})"
    )
    print(
        f"  Redis CPU per {unit}: {cpu_us:.0f} us (commandstats alone: "
        f"{sum(used.usec.values()) / units:.0f} us) -> one Redis core: "
        f"{1e6 / max(cpu_us, 1e-9):,.0f} {plural}/s"
    )
    if len(used.cpu) > 1:
        print(f"  share of the Redis CPU per primary: {shares}")


def noop() -> str:
    """Do nothing."""
    return "ok"


async def run_steps(server: ServerThread, runs: int, steps: int) -> None:
    task = "loop\n" + "\n".join("/call noop {}" for _ in range(steps - 1))
    async with httpx.AsyncClient(base_url=server.url, trust_env=False, timeout=60) as client:
        workspaces = [f"cap-{uuid.uuid4().hex[:8]}" for _ in range(8)]
        for name in workspaces:
            body = {
                "id": name,
                "budget_tokens": 10**12,
                "tools": [{"name": "noop", "side": "server"}],
            }
            (await client.post("/v1/workspaces", json=body)).raise_for_status()
        accepted = []
        for i in range(runs):
            response = await client.post(
                f"/v1/workspaces/{workspaces[i % len(workspaces)]}/runs", json={"input": task}
            )
            response.raise_for_status()
            accepted.append(response.json()["run"])
    by_workspace: dict[str, set[str]] = {}
    for i, run in enumerate(accepted):
        by_workspace.setdefault(workspaces[i % len(workspaces)], set()).add(run)
    server.call(asyncio.wait_for(finished(server, by_workspace), 300))


async def finished(server: ServerThread, runs: dict[str, set[str]]) -> None:
    """Until every run has completed: one tail per workspace (no polling reads)."""

    async def one(workspace: str, pending: set[str]) -> None:
        key = keys.workspace_key("local", workspace)
        async for event in server.mezzo.store.tail(key, 0, ["completed", "failed"]):
            assert event.type == "completed", event
            pending.discard(event.run or "")
            if not pending:
                return

    await asyncio.gather(*(one(w, set(r)) for w, r in runs.items()))


async def gateway_requests(server: ServerThread, n: int) -> None:
    body = {"model": "stub-model", "messages": [{"role": "user", "content": "hi"}]}
    async with httpx.AsyncClient(base_url=server.url, trust_env=False, timeout=60) as client:
        limit = asyncio.Semaphore(16)

        async def one() -> None:
            async with limit:
                (await client.post("/v1/chat/completions", json=body)).raise_for_status()

        await asyncio.gather(*(one() for _ in range(n)))


def deliveries(server: ServerThread, subscribers: int, events: int) -> None:
    """`events` appended one by one to a workspace that `subscribers` tails follow."""
    workspace = keys.workspace_key("local", f"fan-{uuid.uuid4().hex[:8]}")
    store = server.mezzo.store

    async def follow(seen: list[int]) -> None:
        async for _event in store.tail(workspace, 0):
            seen.append(1)
            if len(seen) == events:
                return

    async def drive() -> None:
        counts: list[list[int]] = [[] for _ in range(subscribers)]
        tails = [asyncio.create_task(follow(c)) for c in counts]
        await asyncio.sleep(0.5)
        for i in range(events):
            await store.append(
                workspace, None, [NewEvent(type="budget_added", data={"n": i})], None
            )
            await asyncio.sleep(0.01)
        await asyncio.wait_for(asyncio.gather(*tails), 60)

    server.call(drive())


def main(primaries: int, runs: int, steps: int, requests: int) -> None:
    configure_logging("warning", "console")
    with ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        stub = stack.enter_context(StubServer())
        url, ports = stack.enter_context(deployment(primaries, Path(tmp)))
        print(f"{primaries} primar{'y' if primaries == 1 else 'ies'}: {url}")
        settings = core_settings(
            Path(tmp) / "data", stub, store=url, concurrency=16, openai_api="chat"
        )
        deployed = Primaries(ports)
        with ServerThread(settings) as server:
            server.mezzo.tools.register(noop)
            asyncio.run(run_steps(server, 4, steps))  # warm: scripts loaded, caches filled
            before, started = deployed.snapshot(), time.monotonic()
            asyncio.run(run_steps(server, runs, steps))
            seconds = time.monotonic() - started
            used = delta(before, deployed.snapshot())
            report("run steps (model call + server tool)", runs * steps, "step", used, seconds)

            asyncio.run(gateway_requests(server, 20))
            before, started = deployed.snapshot(), time.monotonic()
            asyncio.run(gateway_requests(server, requests))
            seconds = time.monotonic() - started
            used = delta(before, deployed.snapshot())
            report("gateway chat requests", requests, "request", used, seconds)

            subscribers, events = 200, 100
            before, started = deployed.snapshot(), time.monotonic()
            deliveries(server, subscribers, events)
            seconds = time.monotonic() - started
            used = delta(before, deployed.snapshot())
            report(
                f"events delivered ({subscribers} tails of one workspace, appends included)",
                subscribers * events,
                "delivery",
                used,
                seconds,
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--primaries", type=int, default=1, choices=[1, 3])
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--requests", type=int, default=500)
    arguments = parser.parse_args()
    main(arguments.primaries, arguments.runs, arguments.steps, arguments.requests)
