"""The long soak: mixed load (plain runs, client-side tool loops, cancels, reconnecting
WebSocket subscribers) on a `mezzo serve` process, on the embedded SQLite store or on Redis,
with the server's memory sampled every 0.5 s. Prints what was lost (nothing, or the test
fails), errors, and the memory trend over the second half against the warm-up level.

    .venv/bin/python bench/soak_bench.py [--minutes 10] [--store sqlite|redis]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "ops"), str(ROOT / "tests" / "store")]

from redis_process import RedisProcess  # noqa: E402
from soak_support import soak  # noqa: E402

from core_support import ServeProcess, free_port, process_env  # noqa: E402
from mezzo.stub.config import StubConfig  # noqa: E402
from mezzo.stub.server import StubServer  # noqa: E402


def main(minutes: float, store: str) -> int:
    with tempfile.TemporaryDirectory() as tmp, StubServer(StubConfig()) as stub:
        redis = RedisProcess(Path(tmp) / "redis").start() if store == "redis" else None
        extra = {"MEZZO_STORE": redis.url} if redis else {"MEZZO_SQLITE_SYNCHRONOUS": "NORMAL"}
        port = free_port()
        server = ServeProcess(
            ["serve", "--port", str(port)], process_env(Path(tmp) / "data", stub, **extra), port
        ).start()
        try:
            assert server.proc is not None
            report = asyncio.run(soak(server.url, server.proc.pid, minutes * 60))
        finally:
            server.terminate()
            if redis:
                redis.kill()
    mib = [r / 2**20 for _, r in report.rss]
    warm = statistics.median(mib[len(mib) // 10 : len(mib) // 5 or 1])
    end = statistics.median(mib[-max(1, len(mib) // 10) :])
    statuses = {s: list(report.finished.values()).count(s) for s in set(report.finished.values())}
    print(f"store={store} minutes={minutes} runs={len(report.expected)} requests={report.requests}")
    print(f"finished: {statuses}")
    print(f"lost or wrong: {len(report.lost())}  server errors: {len(report.errors)}")
    gaps = [n for n, s in report.received.items() if s != list(range(1, len(s) + 1))]
    print(f"subscribers: {len(report.received)}, with gaps or duplicates: {len(gaps)}")
    print(
        f"server RSS: warm {warm:.1f} MiB, end {end:.1f} MiB, end/warm {end / warm:.3f}, "
        f"trend over the second half {report.slope_mib_per_min():+.2f} MiB/min"
    )
    for line in (report.lost() + report.errors)[:10]:
        print("  ", line)
    return 1 if report.lost() or report.errors or gaps else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--store", choices=("sqlite", "redis"), default="sqlite")
    args = parser.parse_args()
    raise SystemExit(main(args.minutes, args.store))
