"""A mixed-load soak against a running mezzo server: plain runs, client-side tool loops,
cancels, and WebSocket subscribers that reconnect with their last seq. Afterwards every run
must have ended as expected and every subscriber must hold its workspace's whole log."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import websockets

WORKSPACES = ("soak-a", "soak-b")
TOOL = {"name": "lookup", "side": "client"}


@dataclass
class SoakReport:
    expected: dict[str, str] = field(default_factory=dict)  # run -> status it must end in
    finished: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    received: dict[str, list[int]] = field(default_factory=dict)  # subscriber -> seqs
    rss: list[tuple[float, int]] = field(default_factory=list)
    requests: int = 0

    def slope_mib_per_min(self) -> float:
        """Least-squares trend of the server's memory over the second half of the run."""
        half = self.rss[len(self.rss) // 2 :]
        if len(half) < 3:
            return 0.0
        xs = [t for t, _ in half]
        ys = [r / 2**20 for _, r in half]
        return float(statistics.linear_regression(xs, ys).slope * 60)

    def lost(self) -> list[str]:
        wrong = []
        for run, status in self.expected.items():
            got = self.finished.get(run)
            if got != status and not (status == "cancelled" and got == "completed"):
                wrong.append(f"{run}: expected {status}, got {got}")
        return wrong


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


async def soak(url: str, pid: int, duration_s: float, seed: int = 1) -> SoakReport:
    report = SoakReport()
    rng = random.Random(seed)
    stop = asyncio.Event()
    limits = httpx.Limits(max_connections=32)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits, trust_env=False) as http:

        async def call(method: str, path: str, body: object = None) -> httpx.Response:
            report.requests += 1
            response = await http.request(method, path, json=body)
            if response.status_code >= 500:
                report.errors.append(f"{method} {path}: {response.status_code} {response.text}")
            return response

        for ws in WORKSPACES:
            await call("POST", "/v1/workspaces", {"id": ws, "tools": [TOOL], "human_input": False})

        async def submit(text: str, expect: str) -> str:
            answer = await call(
                "POST", f"/v1/workspaces/{rng.choice(WORKSPACES)}/runs", {"input": text}
            )
            if answer.status_code != 202:
                report.errors.append(f"submit: {answer.status_code} {answer.text}")
                return ""
            run = str(answer.json()["run"])
            report.expected[run] = expect
            return run

        async def follow(run: str, cancel: bool = False) -> None:
            """Answer its client tool calls (or cancel it) until it ends."""
            while True:
                view = (await call("GET", f"/v1/runs/{run}")).json()
                if view["status"] in ("completed", "failed", "cancelled"):
                    report.finished[run] = view["status"]
                    return
                if view["status"] == "awaiting_tool":
                    if cancel:
                        await call("POST", f"/v1/runs/{run}/cancel", {"reason": "soak"})
                        continue
                    results = [
                        {"call_id": c["call_id"], "output": "found"}
                        for c in view["pending_tool_calls"]
                    ]
                    await call("POST", f"/v1/runs/{run}/tool_results", {"results": results})
                    continue
                await asyncio.sleep(0.05)

        async def load() -> None:
            followers: set[asyncio.Task[None]] = set()
            while not stop.is_set():
                kind = rng.random()
                if kind < 0.5:
                    run = await submit("hello soak", "completed")
                    cancel = False
                elif kind < 0.85:
                    run = await submit("loop\n/call lookup {}\n/call lookup {}", "completed")
                    cancel = False
                else:
                    run = await submit("wait for me\n/call lookup {}", "cancelled")
                    cancel = True
                if run:
                    task = asyncio.create_task(follow(run, cancel))
                    followers.add(task)
                    task.add_done_callback(followers.discard)
                await asyncio.sleep(rng.uniform(0.01, 0.08))
            await asyncio.gather(*followers)

        async def subscriber(name: str, workspace: str) -> None:
            seqs = report.received.setdefault(f"{name}:{workspace}", [])
            ws_url = url.replace("http", "ws", 1) + f"/v1/workspaces/{workspace}/events"
            while True:
                after = seqs[-1] if seqs else 0
                with contextlib.suppress(TimeoutError):
                    async with websockets.connect(f"{ws_url}?after={after}") as ws:
                        async with asyncio.timeout(rng.uniform(1.0, 3.0)):  # churn: reconnect
                            async for message in ws:
                                seq = json.loads(message)["seq"]
                                if seq is not None:  # text deltas are live only, without seq
                                    seqs.append(seq)
                if stop.is_set() and seqs and seqs[-1] >= await head(workspace):
                    return

        async def head(workspace: str) -> int:
            return int((await call("GET", f"/v1/workspaces/{workspace}")).json()["head_seq"])

        async def sample() -> None:
            started = time.monotonic()
            while not stop.is_set():
                report.rss.append((time.monotonic() - started, rss_bytes(pid)))
                await asyncio.sleep(0.5)

        subscribers = [
            asyncio.create_task(subscriber(f"s{i}", ws)) for i in range(2) for ws in WORKSPACES
        ]
        sampler = asyncio.create_task(sample())
        loader = asyncio.create_task(load())
        await asyncio.sleep(duration_s)
        stop.set()
        await loader
        await sampler
        await asyncio.wait_for(asyncio.gather(*subscribers), 60)
    return report
