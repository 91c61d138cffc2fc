"""Ingestion (POST run → 202) on Redis: 2 API nodes vs 1, same run, same Redis.

Starts a private `redis-server` (no persistence, like the shared one) and `mezzo serve
--no-workers --store redis://…` processes, then drives them with wrk (one wrk per node, the
connections split evenly). Prints throughput and latency for 1 node and for 2 nodes, and the
ratio.

    .venv/bin/python bench/redis_ingest_bench.py [--seconds 8] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))

from ingest_bench import drive_wrk, wait_ready  # noqa: E402

from core_support import free_port  # noqa: E402


def start_node(port: int, store: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mezzo.cli",
            "serve",
            "--port",
            str(port),
            "--no-workers",
            "--store",
            store,
        ],
        env=env,
    )


def drive_nodes(urls: list[str], seconds: int, concurrency: int) -> dict[str, float]:
    body = {"input": "hello"}
    share = max(1, concurrency // len(urls))
    with ThreadPoolExecutor(len(urls)) as pool:
        results = list(pool.map(lambda url: drive_wrk(url, seconds, share, body), urls))
    return {
        "throughput": sum(r["throughput"] for r in results),
        "p50_ms": max(r["p50_ms"] for r in results),
        "p99_ms": max(r["p99_ms"] for r in results),
        "accepted": sum(r["accepted"] for r in results),
        "total": sum(r["total"] for r in results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()

    from mezzo.stub.config import StubConfig
    from mezzo.stub.server import StubServer

    with tempfile.TemporaryDirectory() as tmp, StubServer(StubConfig()) as stub:
        redis_port = free_port()
        redis_server = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--dir",
                tmp,
            ],
            stdout=subprocess.DEVNULL,
        )
        store = f"redis://127.0.0.1:{redis_port}/0"
        env = {
            **os.environ,
            "MEZZO_DATA_DIR": f"{tmp}/data",
            "MEZZO_ROUTES": '{"default": {"primary": "openai:stub-model"}}',
            "MEZZO_OPENAI_API": "chat",
            "MEZZO_LOG_LEVEL": "warning",
            "OPENAI_BASE_URL": stub.base_url,
            "OPENAI_API_KEY": "bench",
        }
        time.sleep(0.3)
        ports = [free_port(), free_port()]
        nodes = [start_node(port, store, env) for port in ports]
        try:
            bases = [f"http://127.0.0.1:{port}" for port in ports]
            for base in bases:
                wait_ready(f"{base}/healthz")
            created = httpx.post(
                f"{bases[0]}/v1/workspaces",
                json={"id": "bench", "budget_tokens": 10**12},
                trust_env=False,
            )
            assert created.status_code == 201, created.text
            urls = [f"{base}/v1/workspaces/bench/runs" for base in bases]
            drive_nodes(urls, 2, args.concurrency)  # warm-up
            one = drive_nodes(urls[:1], args.seconds, args.concurrency)
            two = drive_nodes(urls, args.seconds, args.concurrency)
            head = httpx.get(
                f"{bases[1]}/v1/workspaces/bench/events",
                params={"after": 0, "limit": 1},
                trust_env=False,
            )
            assert head.status_code == 200, head.text
        finally:
            for proc in [*nodes, redis_server]:
                proc.terminate()
                proc.wait(30)

    print(
        f"POST run → 202 on one Redis, wrk with {args.concurrency} connections in all, "
        f"{args.seconds} s per figure, {os.cpu_count()} cores"
    )
    for label, figures in (("1 API node", one), ("2 API nodes", two)):
        print(
            f"{label:12s} {figures['throughput']:8.0f}/s  p50 {figures['p50_ms']:6.1f} ms  "
            f"p99 {figures['p99_ms']:6.1f} ms  2xx {figures['accepted']:.0f}/{figures['total']:.0f}"
        )
    print(f"2 nodes ÷ 1 node: {two['throughput'] / one['throughput']:.2f}x")
    print(json.dumps({"one": one, "two": two}))


if __name__ == "__main__":
    main()
