"""The store's size per step of a long tool loop: a 200-step run (each model call followed by a
server-side tool) on the embedded SQLite store, against runs of 50 and 100 steps.

mezzo stores each step's new events once, plus one snapshot of the folded state per run,
overwritten every `snapshot_every` events. The baseline is what a design that re-stores the
whole history at every step would hold: the sum over steps of the folded state's size.

    .venv/bin/python bench/store_growth_bench.py [--steps 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "ops")]

from ops_support import run_loop, sqlite_bytes, tick_tools, tick_workspace  # noqa: E402

from core_support import core_settings  # noqa: E402
from mezzo import keys  # noqa: E402
from mezzo.engine.snapshot import dump_state  # noqa: E402
from mezzo.engine.state import fold, fold_new  # noqa: E402
from mezzo.logs import configure_logging  # noqa: E402
from mezzo.service import Mezzo  # noqa: E402
from mezzo.stub.config import StubConfig  # noqa: E402
from mezzo.stub.server import StubServer  # noqa: E402


async def measure(steps: int, folder: Path, stub: StubServer) -> tuple[int, int, int]:
    """(store bytes, event bytes, whole-history-per-step bytes) of one run of `steps` steps."""
    mezzo = Mezzo(core_settings(folder, stub, sqlite_synchronous="NORMAL"), tools=tick_tools())
    await mezzo.start()
    try:
        await tick_workspace(mezzo, "w")
        run = await run_loop(mezzo, "w", steps)
        events = await mezzo.store.read(keys.workspace_key("local", "w"), 0, None, 100_000, run)
    finally:
        await mezzo.stop()
    event_bytes = sum(len(e.model_dump_json()) for e in events)
    state = fold_new(run, "w", [])
    rewritten = 0
    for event in events:
        fold([event], state)
        if event.type == "model_result":
            rewritten += len(json.dumps(dump_state(state)))
    return sqlite_bytes(folder / "mezzo.sqlite3"), event_bytes, rewritten


async def main(steps: int) -> None:
    configure_logging("warning", "console")
    sizes = {}
    with tempfile.TemporaryDirectory() as tmp, StubServer(StubConfig()) as stub:
        empty = Path(tmp) / "empty"
        mezzo = Mezzo(core_settings(empty, stub), tools=tick_tools())
        await mezzo.start()
        await tick_workspace(mezzo, "w")
        await mezzo.stop()
        base = sqlite_bytes(empty / "mezzo.sqlite3")
        for n in (steps // 4, steps // 2, steps):
            sizes[n] = await measure(n, Path(tmp) / f"s{n}", stub)
    print(f"empty store with one workspace: {base} bytes")
    for n, (store, events, rewritten) in sizes.items():
        print(
            f"{n:4d} steps: store {store - base:9d} B ({(store - base) / n:7.0f} B/step), "
            f"events {events / n:6.0f} B/step, whole-history-per-step baseline {rewritten:11d} B"
        )
    q, h, f = steps // 4, steps // 2, steps
    early = (sizes[h][0] - sizes[q][0]) / (h - q)
    late = (sizes[f][0] - sizes[h][0]) / (f - h)
    print(f"marginal store bytes per step: steps {q}-{h}: {early:.0f}, steps {h}-{f}: {late:.0f}")
    print(f"late/early marginal ratio: {late / early:.2f} (1.0 = linear)")
    print(f"baseline / mezzo at {f} steps: {sizes[f][2] / (sizes[f][0] - base):.1f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=200)
    asyncio.run(main(parser.parse_args().steps))
