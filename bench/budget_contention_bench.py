"""Many runs on one small budget: how many complete, how many suspend, what is left unspent.

40 runs are submitted at once to one workspace (`fallback_behavior="suspend"`) whose budget
fits BUDGET_RUNS of them, against the stub in its own process with some latency so the calls
overlap. A correct governor completes exactly the runs the budget fits and suspends only when
less than one run's need is left.

    .venv/bin/python bench/budget_contention_bench.py [--runs 40] [--fits 40] [--latency-ms 50]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from step_overhead_bench import stub_process  # noqa: E402

from core_support import core_settings  # noqa: E402
from mezzo import keys  # noqa: E402
from mezzo.logs import configure_logging  # noqa: E402
from mezzo.protocol import CreateWorkspace, SubmitRun  # noqa: E402
from mezzo.service import Mezzo  # noqa: E402


async def main(runs: int, fits: int, latency_ms: float) -> None:
    configure_logging("warning", "console")
    with tempfile.TemporaryDirectory() as tmp, stub_process() as stub:
        mezzo = Mezzo(core_settings(Path(tmp), stub))
        await mezzo.start()
        try:
            await mezzo.create_workspace("local", CreateWorkspace(id="one"))
            first, _ = await mezzo.submit_run("local", "one", SubmitRun(input="task number 000"))
            await _settled(mezzo, [first.run])
            need = (await mezzo.get_run("local", first.run)).usage
            per_run = need.input_tokens + need.output_tokens
            budget = fits * per_run + per_run // 2
            async with httpx.AsyncClient(trust_env=False) as client:
                config = f"{stub.base_url.removesuffix('/v1')}/_stub/config"
                (await client.post(config, json={"latency_ms": latency_ms})).raise_for_status()
            await mezzo.create_workspace(
                "local", CreateWorkspace(id="shared", budget_tokens=budget)
            )
            started = time.perf_counter()
            accepted = await asyncio.gather(
                *(
                    mezzo.submit_run("local", "shared", SubmitRun(input=f"task number {i:03d}"))
                    for i in range(runs)
                )
            )
            ids = [a.run for a, _ in accepted]
            statuses = await _settled(mezzo, ids)
            elapsed = time.perf_counter() - started
            ledger = await mezzo.store.ledger_get(keys.workspace_key("local", "shared"))
        finally:
            await mezzo.stop()
    completed = statuses.count("completed")
    suspended = statuses.count("suspended")
    print(f"runs={runs} budget={budget} tokens (fits {fits} runs of {per_run})")
    print(f"completed {completed}, suspended {suspended}, other {runs - completed - suspended}")
    print(
        f"unspent {ledger.budget - ledger.committed} of {ledger.budget} tokens, in {elapsed:.1f} s"
    )


async def _settled(mezzo: Mezzo, runs: list[str]) -> list[str]:
    while True:
        views = [await mezzo.get_run("local", run) for run in runs]
        if all(v.status in ("completed", "suspended", "failed") for v in views):
            return [v.status for v in views]
        await asyncio.sleep(0.1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--fits", type=int, default=40)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.runs, arguments.fits, arguments.latency_ms))
