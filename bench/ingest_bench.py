"""Ingestion: POST run → 202 on the embedded default (SQLite, durable), against a bare endpoint.

For each mode — the API alone (`--no-workers`) and workers in the serving process (the embedded
default, running the accepted runs against the stub LLM) — starts `mezzo serve` and, in the same
run, a bare uvicorn/Starlette app with one POST endpoint that answers 202. Each target is driven
from a second process by the same closed-loop load generator (wrk, one thread, N connections;
a Python httpx generator where wrk is missing) and the figures printed: throughput, latency,
the server's CPU per request (user + system, from /proc: steadier than throughput on a shared
machine) and the mezzo/bare throughput ratio.

- `bare`: the bare endpoint, measured right before mezzo in each mode;
- `submit`: `POST /v1/workspaces/bench/runs` with `{"input": "hello"}`;
- `submit + Idempotency-Key`: the same with a new key on every request (one KV write more).

    .venv/bin/python bench/ingest_bench.py [--seconds 10] [--concurrency 32] [--api-key]
        [--modes api,workers]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from core_support import free_port  # noqa: E402

HELLO_APP = textwrap.dedent(
    """
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def hello(request):
        await request.body()
        return JSONResponse({"hello": "world"}, status_code=202)

    app = Starlette(routes=[Route("/hello", hello, methods=["POST"])])
    """
)

LOADGEN = textwrap.dedent(
    """
    import asyncio, json, sys, time, uuid
    import httpx

    async def main(url, total, concurrency, body, headers, idempotent):
        latencies = []
        statuses = {}
        next_index = 0
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(limits=limits, trust_env=False, timeout=30) as client:
            async def worker():
                nonlocal next_index
                while next_index < total:
                    next_index += 1
                    sent = dict(headers)
                    if idempotent:
                        sent["idempotency-key"] = uuid.uuid4().hex
                    started = time.perf_counter()
                    response = await client.post(url, content=body, headers=sent)
                    latencies.append(time.perf_counter() - started)
                    statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            elapsed = time.perf_counter() - started
        print(json.dumps({"elapsed": elapsed, "latencies": latencies, "statuses": statuses}))

    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4].encode(),
                     json.loads(sys.argv[5]), sys.argv[6] == "1"))
    """
)

# One wrk thread: `counter` numbers this run's requests, `math.random` keeps runs apart. Every
# target gets its requests from the same `request` function, so the generator costs the same.
WRK_SCRIPT = """
local counter = 0
local run = tostring(math.random(1, 1000000000))
local headers = {["content-type"] = "application/json"}
if os.getenv("AUTHORIZATION") ~= "" then headers["authorization"] = os.getenv("AUTHORIZATION") end
local idempotent = os.getenv("IDEMPOTENT") == "1"
local body = os.getenv("BODY")

request = function()
  if idempotent then
    counter = counter + 1
    headers["idempotency-key"] = run .. "-" .. counter
  end
  return wrk.format("POST", nil, headers, body)
end
"""


def wait_ready(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1, trust_env=False)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def _ms(value: str) -> float:
    units = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    for unit in ("us", "ms", "s"):
        if value.endswith(unit):
            return float(value[: -len(unit)]) * units[unit]
    return float(value)


def drive_wrk(
    url: str,
    seconds: int,
    concurrency: int,
    body: dict[str, object],
    *,
    authorization: str = "",
    idempotent: bool = False,
) -> dict[str, float]:
    """wrk (C, one thread) as the load generator: it costs far less CPU than a Python one."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s", "--latency", "-s", script.name, url],
        capture_output=True,
        text=True,
        check=True,
        env={
            **os.environ,
            "BODY": json.dumps(body),
            "AUTHORIZATION": authorization,
            "IDEMPOTENT": "1" if idempotent else "0",
        },
    ).stdout
    os.unlink(script.name)
    figures: dict[str, float] = {"accepted": -1, "total": 0}
    if "requests in" not in out:
        raise RuntimeError(f"wrk printed no figures:\n{out}")
    for line in out.splitlines():
        parts = line.split()
        if line.strip().startswith("50%"):
            figures["p50_ms"] = _ms(parts[1])
        elif line.strip().startswith("99%"):
            figures["p99_ms"] = _ms(parts[1])
        elif line.startswith("Requests/sec:"):
            figures["throughput"] = float(parts[1])
        elif "requests in" in line:
            figures["total"] = int(parts[0])
        elif line.strip().startswith("Non-2xx"):
            figures["errors"] = int(parts[-1])
    figures["accepted"] = figures["total"] - figures.get("errors", 0)
    return figures


def drive_python(
    url: str,
    total: int,
    concurrency: int,
    body: dict[str, object],
    *,
    authorization: str = "",
    idempotent: bool = False,
) -> dict[str, float]:
    headers = {"content-type": "application/json"}
    if authorization:
        headers["authorization"] = authorization
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            LOADGEN,
            url,
            str(total),
            str(concurrency),
            json.dumps(body),
            json.dumps(headers),
            "1" if idempotent else "0",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(out.stdout)
    latencies = sorted(result["latencies"])
    ok = sum(count for status, count in result["statuses"].items() if status.startswith("2"))
    return {
        "throughput": len(latencies) / result["elapsed"],
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "accepted": ok,
        "total": len(latencies),
    }


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (Linux), None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured(pid: int, drive: Callable[[], dict[str, float]]) -> dict[str, float]:
    """`drive`'s figures plus the CPU the process `pid` spent per request meanwhile."""
    before = cpu_seconds(pid)
    figures = drive()
    after = cpu_seconds(pid)
    if before is not None and after is not None and figures["total"]:
        figures["cpu_us"] = (after - before) / figures["total"] * 1e6
    return figures


def create_key(env: dict[str, str]) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "mezzo.cli", "keys", "create", "--tenant", "bench"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip().split()[-1]


def measure_mode(
    args: argparse.Namespace, workers: bool, stub_url: str, tmp: str
) -> list[tuple[str, dict[str, float]]]:
    hello_port, mezzo_port = free_port(), free_port()
    data = Path(tmp) / ("data-workers" if workers else "data-api")
    env = {
        **os.environ,
        "MEZZO_DATA_DIR": str(data),
        "MEZZO_ROUTES": '{"default": {"primary": "openai:stub-model"}}',
        "MEZZO_OPENAI_API": "chat",
        "MEZZO_LOG_LEVEL": "warning",
        "OPENAI_BASE_URL": stub_url,
        "OPENAI_API_KEY": "bench",
    }
    authorization = f"Bearer {create_key(env)}" if args.api_key else ""
    hello = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "hello_app:app",
            "--port",
            str(hello_port),
            "--log-level",
            "warning",
        ],
        cwd=tmp,
    )
    mezzo = subprocess.Popen(
        [sys.executable, "-m", "mezzo.cli", "serve", "--port", str(mezzo_port)]
        + ([] if workers else ["--no-workers"]),
        env=env,
        stderr=subprocess.DEVNULL,
    )
    body = {"input": "hello"}
    hello_url = f"http://127.0.0.1:{hello_port}/hello"
    base = f"http://127.0.0.1:{mezzo_port}"
    runs_url = f"{base}/v1/workspaces/bench/runs"
    try:
        wait_ready(f"{base}/healthz")
        wait_ready(f"http://127.0.0.1:{hello_port}/")
        created = httpx.post(
            f"{base}/v1/workspaces",
            json={"id": "bench", "budget_tokens": 10**12},
            headers={"authorization": authorization} if authorization else {},
            trust_env=False,
        )
        created.raise_for_status()
        if shutil.which("wrk"):

            def drive(url: str, **kw: object) -> dict[str, float]:
                return drive_wrk(url, args.seconds, args.concurrency, body, **kw)  # type: ignore[arg-type]
        else:

            def drive(url: str, **kw: object) -> dict[str, float]:
                return drive_python(url, args.requests, args.concurrency, body, **kw)  # type: ignore[arg-type]

        drive(hello_url)  # warm-up, both
        drive(runs_url, authorization=authorization)
        return [
            ("bare", measured(hello.pid, lambda: drive(hello_url))),
            ("submit", measured(mezzo.pid, lambda: drive(runs_url, authorization=authorization))),
            (
                "submit + Idempotency-Key",
                measured(
                    mezzo.pid,
                    lambda: drive(runs_url, authorization=authorization, idempotent=True),
                ),
            ),
        ]
    finally:
        for proc in (hello, mezzo):
            proc.terminate()
            proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10, help="duration per figure (wrk)")
    parser.add_argument("--requests", type=int, default=4000, help="per figure, without wrk")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--modes", default="api,workers", help="api, workers or both")
    parser.add_argument(
        "--api-key",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="create an API key and present it (the server then looks it up per request)",
    )
    args = parser.parse_args()

    from mezzo.stub.config import StubConfig
    from mezzo.stub.server import StubServer

    generator = "wrk (one thread)" if shutil.which("wrk") else "python httpx"
    print(
        f"load generator: {generator} in a second process, {args.concurrency} connections; "
        f"API key: {'yes' if args.api_key else 'no (open, loopback)'}"
    )
    with tempfile.TemporaryDirectory() as tmp, StubServer(StubConfig()) as stub:
        (Path(tmp) / "hello_app.py").write_text(HELLO_APP)
        for mode in args.modes.split(","):
            workers = mode.strip() == "workers"
            figures = measure_mode(args, workers, stub.base_url, tmp)
            print(
                f"-- {'workers in the serving process' if workers else 'API only (--no-workers)'}"
            )
            bare = figures[0][1]
            for name, row in figures:
                ratio = row["throughput"] / bare["throughput"]
                cpu = f"  cpu {row['cpu_us']:4.0f} µs/req" if "cpu_us" in row else ""
                print(
                    f"{name:26s} {row['throughput']:8.0f}/s  p50 {row['p50_ms']:6.1f} ms  "
                    f"p99 {row['p99_ms']:6.1f} ms  2xx {row['accepted']:.0f}/{row['total']:.0f}"
                    + cpu
                    + ("" if name == "bare" else f"  ×{ratio:.2f} of bare")
                )


if __name__ == "__main__":
    main()
