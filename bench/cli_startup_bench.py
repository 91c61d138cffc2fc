"""Start-up of the `mezzo` console script: `--help` and a few subcommands' `--help`.

Each command is run as the console script (`.venv/bin/mezzo`, so any fast path keyed on the
script's name applies) with PYTHONPATH set to one source tree, then the other, alternating, so
a baseline tree (e.g. the main checkout) and this one are timed in the same run under the same
load. Prints the median wall time of each and the ratio.

    .venv/bin/python bench/cli_startup_bench.py --baseline /work/main/src [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = [
    ["--help"],
    ["stub-llm", "--help"],
    # A real scan of a small fixture: `scan --help` alone would flatter a fast path (typer
    # builds the value of a group's own --help flag with pydantic unless --help is given to it).
    ["scan", "analyze", "-t", str(ROOT / "tests/threatscan/fixtures/mixed/irsa"), "-f", "sarif"],
    ["admin", "--help"],
    ["version"],
]


def once(script: Path, source: Path, args: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(source)}
    started = time.perf_counter()
    subprocess.run([str(script), *args], env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline", type=Path, required=True, help="the src/ of the baseline")
    parser.add_argument("--runs", type=int, default=15)
    options = parser.parse_args()
    script = Path(sys.executable).parent / "mezzo"
    trees = {"baseline": options.baseline, "this": ROOT / "src"}
    print(f"{'command':<22} {'baseline ms':>12} {'this ms':>9} {'ratio':>7}")
    print("(median wall time; ratio = baseline / this)")
    for args in COMMANDS:
        times: dict[str, list[float]] = {name: [] for name in trees}
        for source in trees.values():  # warm the bytecode caches
            once(script, source, args)
        for _ in range(options.runs):
            for name, source in trees.items():
                times[name].append(once(script, source, args))
        base, this = (statistics.median(times[name]) * 1000 for name in trees)
        label = " ".join(args[:2]) if args[0] == "scan" else " ".join(args)
        print(f"{label:<22} {base:>12.0f} {this:>9.0f} {base / this:>6.1f}x")


if __name__ == "__main__":
    main()
