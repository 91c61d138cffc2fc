"""A long tool loop through mezzo's OpenAI-compatible gateway, four ways, in one run.

The stub LLM (`mezzo stub-llm`, its own process) plays a fast model: `--tokens-per-second`
output, `--latency-ms` to the first token. A real `mezzo serve` (its own process, SQLite store,
the stub as its upstream over the Responses API) is the gateway. The client here (official
`openai` SDK) runs a loop of `--steps` tool calls: the prompt asks for `--steps` calls of a
local tool `read`, whose output is `--tool-tokens` tokens of text, so the history grows to about
steps × tool-tokens. Each loop is timed end to end:

  (a) HTTP through mezzo, one `responses.create` per step sending the full history
  (b) HTTP through mezzo with `previous_response_id` (mezzo keeps the history)
  (c) mezzo's WebSocket mode (`responses.connect()`, `previous_response_id`, store=false)
  (d) the same WebSocket loop straight to the stub (no gateway)
  (e) the full-history HTTP loop straight to the stub (what (a) costs without mezzo)

Scenarios are interleaved `--repeat` times; the median of each is printed with ratios.

With `--overhead-rate R` it then measures the gateway's overhead per request: an open loop of
R short non-streamed `POST /v1/responses` a second for `--overhead-seconds`, straight to the
stub and through mezzo (raw httpx, keep-alive), latency percentiles of both and their
difference. The stub answers without pacing for this part.

    .venv/bin/python bench/gateway_bench.py [--steps 30] [--tool-tokens 1600] [--repeat 3]
        [--overhead-rate 300 --overhead-seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from openai import AsyncOpenAI

TOOLS: list[Any] = [
    {
        "type": "function",
        "name": "read",
        "description": "Read a file.",
        "parameters": {"type": "object", "properties": {"path": {"type": "string"}}},
    }
]
WORDS = ["beta", "zeta", "iota", "acme", "node", "leaf", "tree", "root", "path", "file"]


def read_tool(path: str, tokens: int) -> str:
    """A small local tool: `tokens` stub tokens of text about `path` (one word is one token)."""
    return path + ": " + " ".join(WORDS[(i * 7) % len(WORDS)] for i in range(tokens))


def prompt(steps: int) -> str:
    return "\n".join(f'/call read {{"path": "file{i}.txt"}}' for i in range(steps))


def start_stub(latency_ms: float, tps: float) -> tuple[subprocess.Popen[str], str]:
    args = ["--port", "0", "--latency-ms", str(latency_ms), "--tokens-per-second", str(tps)]
    process = subprocess.Popen(
        [sys.executable, "-c", "from mezzo.stub.cli import app; app()", *args],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    match = re.search(r"(http://127\.0\.0\.1:\d+)/v1", process.stderr.readline())
    if match is None:
        process.kill()
        raise SystemExit("the stub did not start")
    return process, match.group(1) + "/v1"


def start_mezzo(
    stub_url: str, data_dir: str, port: int, synchronous: str
) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEZZO_", "OPENAI_"))}
    env.update(
        {
            "MEZZO_DATA_DIR": data_dir,
            "MEZZO_ROUTES": '{"default": {"primary": "openai:stub-model"}}',
            "MEZZO_OPENAI_API": "responses",
            "MEZZO_MODEL_TOKENIZERS": '{"stub-model": "mezzo-stub"}',
            "MEZZO_MAX_BODY_BYTES": str(8 * 1024 * 1024),
            "MEZZO_SQLITE_SYNCHRONOUS": synchronous,
            "OPENAI_BASE_URL": stub_url,
            "OPENAI_API_KEY": "bench",
        }
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "mezzo.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", trust_env=False).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise SystemExit("mezzo did not start")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Loop:
    def __init__(self, steps: int, tool_tokens: int) -> None:
        self.steps = steps
        self.tool_tokens = tool_tokens

    def output(self, arguments: str) -> str:
        return read_tool(json.loads(arguments)["path"], self.tool_tokens)

    async def full_history(self, client: AsyncOpenAI) -> tuple[int, int]:
        history: list[Any] = [{"role": "user", "content": prompt(self.steps)}]
        calls = 0
        while True:
            response = await client.responses.create(
                model="stub-model", input=history, tools=TOOLS, store=False
            )
            item = response.output[0]
            if item.type != "function_call":
                assert response.usage is not None
                return calls, response.usage.input_tokens
            calls += 1
            history += [
                {
                    "type": "function_call",
                    "call_id": item.call_id,
                    "name": item.name,
                    "arguments": item.arguments,
                },
                {
                    "type": "function_call_output",
                    "call_id": item.call_id,
                    "output": self.output(item.arguments),
                },
            ]

    async def chained(self, client: AsyncOpenAI) -> tuple[int, int]:
        response = await client.responses.create(
            model="stub-model", input=prompt(self.steps), tools=TOOLS
        )
        calls = 0
        while (item := response.output[0]).type == "function_call":
            calls += 1
            response = await client.responses.create(
                model="stub-model",
                previous_response_id=response.id,
                input=[
                    {
                        "type": "function_call_output",
                        "call_id": item.call_id,
                        "output": self.output(item.arguments),
                    }
                ],
                tools=TOOLS,
            )
        assert response.usage is not None
        return calls, response.usage.input_tokens

    async def websocket(self, client: AsyncOpenAI) -> tuple[int, int]:
        calls = 0
        async with client.responses.connect() as connection:
            body: dict[str, Any] = {"input": prompt(self.steps)}
            while True:
                await connection.response.create(
                    model="stub-model", tools=TOOLS, store=False, **body
                )
                async for event in connection:
                    if event.type == "error":
                        raise SystemExit(f"error event: {event}")
                    if event.type == "response.completed":
                        break
                response = event.response
                item = response.output[0]
                if item.type != "function_call":
                    assert response.usage is not None
                    return calls, response.usage.input_tokens
                calls += 1
                body = {
                    "previous_response_id": response.id,
                    "input": [
                        {
                            "type": "function_call_output",
                            "call_id": item.call_id,
                            "output": self.output(item.arguments),
                        }
                    ],
                }


async def timed(run: Callable[[], Awaitable[tuple[int, int]]]) -> tuple[float, int, int]:
    started = time.perf_counter()
    calls, tokens = await run()
    return time.perf_counter() - started, calls, tokens


async def open_loop(url: str, rate: float, seconds: float, headers: dict[str, str]) -> list[float]:
    """Latencies (s) of `rate` requests a second for `seconds`, sent on schedule."""
    body = {"model": "stub-model", "input": "ping", "store": False}
    latencies: list[float] = []
    failures: list[str] = []
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with httpx.AsyncClient(trust_env=False, limits=limits, timeout=30) as http:

        async def one() -> None:
            started = time.perf_counter()
            try:
                response = await http.post(url, json=body, headers=headers)
                response.raise_for_status()
            except httpx.HTTPError as error:
                failures.append(f"{type(error).__name__}: {error}")
                return
            latencies.append(time.perf_counter() - started)

        tasks = []
        start = time.perf_counter()
        for n in range(int(rate * seconds)):
            delay = start + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
    if failures:
        print(f"  {url}: {len(failures)} of {len(tasks)} failed, first: {failures[0]}")
    return latencies


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def overhead(
    stub_url: str, gateway_url: str, rate: float, seconds: float, stub_pid: int, mezzo_pid: int
) -> None:
    await open_loop(f"{stub_url}/responses", rate, 1, {})  # warm-up
    await open_loop(f"{gateway_url}/responses", rate, 1, {"X-Mezzo-Workspace": "bench"})
    stub_cpu = cpu_seconds(stub_pid)
    direct = await open_loop(f"{stub_url}/responses", rate, seconds, {})
    stub_cpu = cpu_seconds(stub_pid) - stub_cpu
    mezzo_cpu = cpu_seconds(mezzo_pid)
    through = await open_loop(
        f"{gateway_url}/responses", rate, seconds, {"X-Mezzo-Workspace": "bench"}
    )
    mezzo_cpu = cpu_seconds(mezzo_pid) - mezzo_cpu
    print(f"overhead per request at {rate:.0f} requests/s for {seconds:.0f} s (open loop):")
    for q in (0.5, 0.9, 0.99):
        d, m = percentile(direct, q) * 1000, percentile(through, q) * 1000
        print(
            f"  p{q * 100:.0f}: direct {d:6.2f} ms, through mezzo {m:6.2f} ms, added {m - d:6.2f} ms"
        )
    print(
        f"  CPU per request: stub {stub_cpu / len(direct) * 1000:.2f} ms (direct run), "
        f"mezzo {mezzo_cpu / len(through) * 1000:.2f} ms (its own process, through run)"
    )


async def main(args: argparse.Namespace) -> None:
    stub, stub_url = start_stub(args.latency_ms, args.tokens_per_second)
    port = free_port()
    data_dir = tempfile.mkdtemp(prefix="gateway-bench-")
    mezzo = start_mezzo(stub_url, data_dir, port, args.sqlite_synchronous)
    # A workspace with room for every loop (the default one holds 1M tokens).
    async with httpx.AsyncClient(trust_env=False) as http:
        created = await http.post(
            f"http://127.0.0.1:{port}/v1/workspaces",
            json={"id": "bench", "budget_tokens": 10**12},
        )
        created.raise_for_status()
    gateway = AsyncOpenAI(
        base_url=f"http://127.0.0.1:{port}/v1",
        api_key="x",
        max_retries=0,
        default_headers={"X-Mezzo-Workspace": "bench"},
    )
    direct = AsyncOpenAI(base_url=stub_url, api_key="x", max_retries=0)
    loop = Loop(args.steps, args.tool_tokens)
    scenarios: dict[str, Callable[[], Awaitable[tuple[int, int]]]] = {
        "(a) mezzo HTTP, full history": lambda: loop.full_history(gateway),
        "(b) mezzo HTTP, previous_response_id": lambda: loop.chained(gateway),
        "(c) mezzo WebSocket mode": lambda: loop.websocket(gateway),
        "(d) stub WebSocket mode, direct": lambda: loop.websocket(direct),
        "(e) stub HTTP, full history, direct": lambda: loop.full_history(direct),
    }
    times: dict[str, list[float]] = {name: [] for name in scenarios}
    try:
        if args.overhead_rate > 0:
            async with httpx.AsyncClient(trust_env=False) as http:
                await http.post(
                    stub_url.removesuffix("/v1") + "/_stub/config",
                    json={"latency_ms": 0, "tokens_per_second": None},
                )
            await overhead(
                stub_url,
                f"http://127.0.0.1:{port}/v1",
                args.overhead_rate,
                args.overhead_seconds,
                stub.pid,
                mezzo.pid,
            )
            if args.skip_loop:
                return
            async with httpx.AsyncClient(trust_env=False) as http:
                await http.post(
                    stub_url.removesuffix("/v1") + "/_stub/config",
                    json={
                        "latency_ms": args.latency_ms,
                        "tokens_per_second": args.tokens_per_second,
                    },
                )
        for run in scenarios.values():  # warm-up: connections, caches, imports
            await timed(run)
        for _ in range(args.repeat):
            for name, run in scenarios.items():
                seconds, calls, tokens = await timed(run)
                assert calls == args.steps, (name, calls)
                times[name].append(seconds)
    finally:
        await gateway.close()
        await direct.close()
        mezzo.terminate()
        mezzo.wait(15)
        stub.kill()
    print(
        f"{args.steps}-step tool loop, {args.tool_tokens} tokens per tool output, final history "
        f"{tokens} tokens; stub {args.tokens_per_second:.0f} tokens/s, "
        f"{args.latency_ms:.0f} ms to first token; median of {args.repeat}"
    )
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, value in medians.items():
        spread = f"{min(times[name]):.3f}-{max(times[name]):.3f}"
        print(f"  {name:40s} {value:7.3f} s  ({spread})  {value / args.steps * 1000:6.1f} ms/step")
    a, b, c, d = (medians[k] for k in list(scenarios)[:4])
    print(f"  (c) vs (a): {c / a - 1:+.0%} time, (a)/(c) = {a / c:.2f}x")
    print(f"  (b) vs (a): {b / a - 1:+.0%} time")
    print(f"  (c) vs (d): {c / d - 1:+.0%} time (what the gateway adds in WebSocket mode)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--tool-tokens", type=int, default=1600)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tokens-per-second", type=float, default=1000.0)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--overhead-rate", type=float, default=0.0)
    parser.add_argument("--overhead-seconds", type=float, default=5.0)
    parser.add_argument("--sqlite-synchronous", default="FULL", choices=["FULL", "NORMAL"])
    parser.add_argument("--skip-loop", action="store_true", help="Only the overhead part.")
    asyncio.run(main(parser.parse_args()))
