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
            [sys.executable, "-m", "mezzo.cli", "serve", "--port", str(mezzo_port)], env=env
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
            bare = drive(
                f"http://127.0.0.1:{hello_port}/hello", args.requests, args.concurrency, body
            )
            ours = drive(f"{base}/v1/workspaces/bench/runs", args.requests, args.concurrency, body)
        finally:
            for proc in (hello, mezzo):
                proc.terminate()
                proc.wait(30)
    print(
        f"requests={args.requests} concurrency={args.concurrency} (load generator in a second process)"
    )
    for name, figures in (("bare uvicorn hello", bare), ("mezzo POST run → 202", ours)):
        print(
            f"{name:24s} {figures['throughput']:8.0f}/s  p50 {figures['p50_ms']:6.1f} ms  "
            f"p99 {figures['p99_ms']:6.1f} ms  202s {figures['accepted']}/{figures['total']}"
        )
    print(f"mezzo / bare throughput ratio: {ours['throughput'] / bare['throughput']:.2f}")


if __name__ == "__main__":
    main()
