"""Ingestion: POST run → 202 on the embedded default, against a bare uvicorn endpoint.

Starts `mezzo serve` (SQLite, workers on, the stub LLM as upstream) and a bare uvicorn app with
one POST endpoint, then drives each from a second process with the same closed-loop load
generator (httpx, N concurrent connections) and prints throughput and latency percentiles.

    .venv/bin/python bench/ingest_bench.py [--requests 4000] [--concurrency 32]
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
    import asyncio, json, sys, time
    import httpx

    async def main(url, total, concurrency, body):
        latencies = []
        statuses = {}
        next_index = 0
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(limits=limits, trust_env=False, timeout=30) as client:
            async def worker():
                nonlocal next_index
                while next_index < total:
                    next_index += 1
                    started = time.perf_counter()
                    response = await client.post(url, content=body, headers={"content-type": "application/json"})
                    latencies.append(time.perf_counter() - started)
                    statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            elapsed = time.perf_counter() - started
        print(json.dumps({"elapsed": elapsed, "latencies": latencies, "statuses": statuses}))

    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4].encode()))
    """
)


def wait_ready(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1, trust_env=False)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
wrk.body = os.getenv("BODY")
"""


def _ms(value: str) -> float:
    units = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    for unit in ("us", "ms", "s"):
        if value.endswith(unit):
            return float(value[: -len(unit)]) * units[unit]
    return float(value)


def drive_wrk(
    url: str, seconds: int, concurrency: int, body: dict[str, object]
) -> dict[str, float]:
    """wrk (C, one thread) as the load generator: it costs far less CPU than a Python one."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s", "--latency", "-s", script.name, url],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "BODY": json.dumps(body)},
    ).stdout
    os.unlink(script.name)
    figures: dict[str, float] = {"accepted": -1, "total": 0}
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


def drive(url: str, total: int, concurrency: int, body: dict[str, object]) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", LOADGEN, url, str(total), str(concurrency), json.dumps(body)],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(out.stdout)
    latencies = sorted(result["latencies"])
    ok = result["statuses"].get("202", 0)
    return {
        "throughput": len(latencies) / result["elapsed"],
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "accepted": ok,
        "total": len(latencies),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=int, default=10, help="duration per target with wrk")
    parser.add_argument(
        "--workers",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run workers in the serving process (the embedded default) or measure the API alone",
    )
    args = parser.parse_args()

    from mezzo.testing.config import StubConfig
    from mezzo.testing.server import StubServer

    with tempfile.TemporaryDirectory() as tmp, StubServer(StubConfig()) as stub:
        hello_port, mezzo_port = free_port(), free_port()
        (Path(tmp) / "hello_app.py").write_text(HELLO_APP)
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
        env = {
            **os.environ,
            "MEZZO_DATA_DIR": f"{tmp}/data",
            "MEZZO_ROUTES": '{"default": {"primary": "openai:stub-model"}}',
            "MEZZO_OPENAI_API": "chat",
            "MEZZO_LOG_LEVEL": "warning",
            "OPENAI_BASE_URL": stub.base_url,
            "OPENAI_API_KEY": "bench",
        }
        mezzo = subprocess.Popen(
            [sys.executable, "-m", "mezzo.cli", "serve", "--port", str(mezzo_port)]
            + ([] if args.workers else ["--no-workers"]),
            env=env,
        )
        try:
            base = f"http://127.0.0.1:{mezzo_port}"
            wait_ready(f"{base}/healthz")
            wait_ready(f"http://127.0.0.1:{hello_port}/")
            httpx.post(
                f"{base}/v1/workspaces",
                json={"id": "bench", "budget_tokens": 10**12},
                trust_env=False,
            )
            body = {"input": "hello"}
            drive(f"http://127.0.0.1:{hello_port}/hello", 300, args.concurrency, body)  # warm-up
            drive(f"{base}/v1/workspaces/bench/runs", 300, args.concurrency, body)
            hello_url = f"http://127.0.0.1:{hello_port}/hello"
            runs_url = f"{base}/v1/workspaces/bench/runs"
            if shutil.which("wrk"):
                generator = "wrk (one thread)"
                bare = drive_wrk(hello_url, args.seconds, args.concurrency, body)
                ours = drive_wrk(runs_url, args.seconds, args.concurrency, body)
            else:
                generator = "python httpx"
                bare = drive(hello_url, args.requests, args.concurrency, body)
                ours = drive(runs_url, args.requests, args.concurrency, body)
        finally:
            for proc in (hello, mezzo):
                proc.terminate()
                proc.wait(30)
    print(
        f"load generator: {generator} in a second process, concurrency={args.concurrency}, "
        f"workers in the serving process: {args.workers}"
    )
    for name, figures in (("bare uvicorn hello", bare), ("mezzo POST run → 202", ours)):
        print(
            f"{name:24s} {figures['throughput']:8.0f}/s  p50 {figures['p50_ms']:6.1f} ms  "
            f"p99 {figures['p99_ms']:6.1f} ms  2xx {figures['accepted']:.0f}/{figures['total']:.0f}"
        )
    print(f"mezzo / bare throughput ratio: {ours['throughput'] / bare['throughput']:.2f}")


if __name__ == "__main__":
    main()
