"""What the gateway adds to a short non-streamed call, against the stub itself and LiteLLM's
proxy, in one run.

Three servers answer the same requests, each its own process: the unpaced stub LLM (the
baseline: a request straight to it), `mezzo serve` (SQLite, the stub as upstream) and LiteLLM's
proxy (one worker, the stub as upstream; installed by this script into a throwaway venv,
`$TMPDIR/mezzo-bench-litellm`, never a mezzo dependency). A load generator in its own process
(aiohttp, keep-alive) sends short non-streamed Chat Completions (and Responses for mezzo):

  1. open loop: `--rate` requests a second for `--seconds`, on schedule; latency percentiles
     of each, what each adds over the stub, and each server's CPU per request (from /proc);
     LiteLLM's proxy saturates far below 300/s, so it is compared at `--litellm-rate`;
  2. saturation: `--concurrency` requests always in flight for `--seconds`: requests a second.

On a small machine the stub and the load generator share the cores with the server measured,
so saturation is also given as 1 / (CPU per request): what one process of it can serve.

    nice -n -15 .venv/bin/python bench/gateway_overhead_bench.py [--rate 300] [--seconds 10]
        [--concurrency 64] [--litellm-rate 50] [--no-litellm] [--sqlite-synchronous FULL|NORMAL]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gateway_bench import cpu_seconds, free_port, percentile, start_stub

CHAT = {"model": "stub-model", "messages": [{"role": "user", "content": "ping"}]}
RESPONSES = {"model": "stub-model", "input": "ping", "store": False}

LOADGEN = textwrap.dedent(
    """
    import asyncio, json, sys, time
    import aiohttp

    async def main(url, body, mode, rate, seconds, concurrency, headers):
        latencies, failures = [], []
        connector = aiohttp.TCPConnector(limit=0, force_close=False)
        async with aiohttp.ClientSession(connector=connector, headers=headers) as http:
            async def one():
                started = time.perf_counter()
                try:
                    async with http.post(url, data=body) as response:
                        await response.read()
                        if response.status != 200:
                            failures.append(response.status)
                            return
                except Exception as error:
                    failures.append(type(error).__name__)
                    return
                latencies.append(time.perf_counter() - started)

            start = time.perf_counter()
            if mode == "open":
                tasks = []
                for n in range(int(rate * seconds)):
                    delay = start + n / rate - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    tasks.append(asyncio.create_task(one()))
                await asyncio.gather(*tasks)
            else:
                async def worker():
                    while time.perf_counter() - start < seconds:
                        await one()
                await asyncio.gather(*(worker() for _ in range(concurrency)))
            elapsed = time.perf_counter() - start
        print(json.dumps({"latencies": latencies, "failures": failures[:5],
                          "failed": len(failures), "elapsed": elapsed}))

    args = json.loads(sys.argv[1])
    asyncio.run(main(**args))
    """
)


@dataclass
class Server:
    name: str
    url: str
    pid: int
    headers: dict[str, str]


def load(
    server: Server,
    path: str,
    body: dict[str, object],
    mode: str,
    rate: float,
    seconds: float,
    concurrency: int,
) -> dict[str, object]:
    args = {
        "url": server.url + path,
        "body": json.dumps(body),
        "mode": mode,
        "rate": rate,
        "seconds": seconds,
        "concurrency": concurrency,
        "headers": {
            "content-type": "application/json",
            "authorization": "Bearer x",
            **server.headers,
        },
    }
    before = cpu_seconds(server.pid)
    out = subprocess.run(
        [sys.executable, "-c", LOADGEN, json.dumps(args)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, object] = json.loads(out.stdout)
    result["cpu"] = cpu_seconds(server.pid) - before
    return result


def start_mezzo(stub_url: str, port: int, synchronous: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEZZO_", "OPENAI_"))}
    env.update(
        {
            "MEZZO_DATA_DIR": tempfile.mkdtemp(prefix="gateway-overhead-"),
            "MEZZO_ROUTES": '{"default": {"primary": "openai:stub-model"}}',
            "MEZZO_OPENAI_API": "chat",
            "MEZZO_MODEL_TOKENIZERS": '{"stub-model": "mezzo-stub"}',
            "MEZZO_SQLITE_SYNCHRONOUS": synchronous,
            "OPENAI_BASE_URL": stub_url,
            "OPENAI_API_KEY": "bench",
        }
    )
    return subprocess.Popen(
        [sys.executable, "-m", "mezzo.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def litellm_venv() -> Path:
    """A throwaway venv with LiteLLM's proxy (made once, reused)."""
    venv = Path(tempfile.gettempdir()) / "mezzo-bench-litellm"
    litellm = venv / "bin" / "litellm"
    if not litellm.exists():
        print(f"installing litellm[proxy] into {venv} (once)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "litellm[proxy]"], check=True)
    return litellm


def start_litellm(stub_url: str, port: int) -> subprocess.Popen[bytes]:
    config = Path(tempfile.mkdtemp(prefix="litellm-bench-")) / "config.yaml"
    config.write_text(
        textwrap.dedent(
            f"""
            model_list:
              - model_name: stub-model
                litellm_params:
                  model: openai/stub-model
                  api_base: {stub_url}
                  api_key: bench
            litellm_settings:
              drop_params: true
              telemetry: false
            """
        )
    )
    # Like mezzo here (no API keys configured), the proxy runs without authentication.
    env = {
        **os.environ,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_LOG": "ERROR",
        "LITELLM_TELEMETRY": "False",
        "DISABLE_SCHEMA_UPDATE": "True",
        "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true",
    }
    return subprocess.Popen(
        [str(litellm_venv()), "--config", str(config), "--port", str(port), "--num_workers", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_ready(url: str, path: str, headers: dict[str, str]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            answer = httpx.post(url + path, json=CHAT, headers=headers, trust_env=False, timeout=5)
            if answer.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{url} did not answer")


def summary(
    name: str, result: dict[str, object], baseline: dict[str, float] | None
) -> dict[str, float]:
    latencies = result["latencies"]
    assert isinstance(latencies, list) and latencies, result
    figures = {q: percentile(latencies, q) * 1000 for q in (0.5, 0.9, 0.99)}
    cpu = float(result["cpu"]) / len(latencies) * 1000  # type: ignore[arg-type]
    added = ""
    if baseline is not None:
        added = f"  added p50 {figures[0.5] - baseline[0.5]:+.2f} ms, p99 {figures[0.99] - baseline[0.99]:+.2f} ms"
    failed = f", {result['failed']} failed {result['failures']}" if result["failed"] else ""
    print(
        f"  {name:34s} p50 {figures[0.5]:6.2f}  p90 {figures[0.9]:6.2f}  p99 {figures[0.99]:6.2f}"
        f" ms  CPU {cpu:.2f} ms/req{added}{failed}"
    )
    return {**figures, "cpu": cpu}


def main(args: argparse.Namespace) -> None:
    stub, stub_url = start_stub(0, 1000)
    httpx.post(
        stub_url.removesuffix("/v1") + "/_stub/config",
        json={"latency_ms": 0, "tokens_per_second": None},
        trust_env=False,
    )
    processes: list[subprocess.Popen[bytes]] = []
    servers = [Server("stub (direct)", stub_url, stub.pid, {})]
    try:
        port = free_port()
        mezzo = start_mezzo(stub_url, port, args.sqlite_synchronous)
        processes.append(mezzo)
        mezzo_url = f"http://127.0.0.1:{port}/v1"
        wait_ready(mezzo_url, "/chat/completions", {})
        servers.append(Server("mezzo", mezzo_url, mezzo.pid, {}))
        if not args.no_litellm:
            lport = free_port()
            litellm = start_litellm(stub_url, lport)
            processes.append(litellm)
            lurl = f"http://127.0.0.1:{lport}"
            wait_ready(lurl, "/chat/completions", {"authorization": "Bearer x"})
            servers.append(Server("litellm proxy", lurl, litellm.pid, {}))
        for server in servers:  # warm-up: connections, caches, the default workspace
            rate = args.litellm_rate if server.name == "litellm proxy" else args.rate
            load(server, "/chat/completions", CHAT, "open", rate, 2, 0)
            load(server, "/responses", RESPONSES, "open", rate, 1, 0)
        rates = [args.rate] + ([args.litellm_rate] if len(servers) > 2 else [])
        results: dict[tuple[str, float], dict[str, float]] = {}
        for rate in rates:
            # LiteLLM's proxy is measured only at the rate it can sustain (`--litellm-rate`).
            measured = servers if rate == args.litellm_rate else servers[:2]
            print(
                f"open loop, {rate:.0f} requests/s for {args.seconds:.0f} s, "
                "non-streamed Chat Completions:"
            )
            base: dict[str, float] | None = None
            for server in measured:
                result = load(server, "/chat/completions", CHAT, "open", rate, args.seconds, 0)
                results[server.name, rate] = summary(server.name, result, base)
                base = base or results[server.name, rate]
        print(f"open loop, {args.rate:.0f} requests/s, non-streamed Responses (store: false):")
        direct = load(servers[0], "/responses", RESPONSES, "open", args.rate, args.seconds, 0)
        rbase = summary("stub (direct)", direct, None)
        summary(
            "mezzo",
            load(servers[1], "/responses", RESPONSES, "open", args.rate, args.seconds, 0),
            rbase,
        )
        print(
            f"saturation, {args.concurrency} in flight for {args.seconds:.0f} s, Chat Completions:"
        )
        for server in servers:
            result = load(
                server, "/chat/completions", CHAT, "closed", 0, args.seconds, args.concurrency
            )
            done = len(result["latencies"])  # type: ignore[arg-type]
            rate = done / float(result["elapsed"])  # type: ignore[arg-type]
            cpu = float(result["cpu"]) / max(1, done) * 1000  # type: ignore[arg-type]
            print(
                f"  {server.name:34s} {rate:7.0f} requests/s  (CPU {cpu:.2f} ms/req: "
                f"{1000 / cpu:.0f}/s for one process)"
            )
        if len(servers) > 2:
            rate = args.litellm_rate
            d, m = results["stub (direct)", rate], results["mezzo", rate]
            lp = results["litellm proxy", rate]
            print(
                f"  LiteLLM proxy / mezzo at {rate:.0f}/s: added latency p50 "
                f"{(lp[0.5] - d[0.5]) / max(1e-9, m[0.5] - d[0.5]):.1f}x, p99 "
                f"{(lp[0.99] - d[0.99]) / max(1e-9, m[0.99] - d[0.99]):.1f}x; "
                f"CPU per request {lp['cpu'] / m['cpu']:.1f}x"
            )
    finally:
        for process in processes:
            process.terminate()
            process.wait(20)
        stub.kill()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--litellm-rate", type=float, default=50.0)
    parser.add_argument("--no-litellm", action="store_true")
    parser.add_argument("--sqlite-synchronous", default="FULL", choices=["FULL", "NORMAL"])
    main(parser.parse_args())
