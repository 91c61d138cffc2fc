"""Sandbox overhead: `true` and `python3 -c pass` in a fresh sandbox vs the same command bare.

Both sides are spawned from the same asyncio process and timed from spawn to exit with output
collected; the sandbox side goes through `Sandbox.run` (bwrap, namespaces, pids cgroup, rlimits,
GNU time for peak memory, capped output), with and without a network allowlist (egress proxy
started, socat bridge inside). Runs alternate bare/sandboxed so drift hits both equally.

    .venv/bin/python bench/sandbox_bench.py [--runs 200]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable

from mezzo.sandbox.bwrap import build_argv
from mezzo.sandbox.runner import Sandbox
from mezzo.sandbox.spec import SandboxSpec

COMMANDS = {"true": ["/bin/true"], "python3 -c pass": ["/usr/bin/python3", "-c", "pass"]}


async def bare(command: list[str]) -> None:
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    await process.communicate()
    assert process.returncode == 0


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def timed(action: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await action()
    return (time.perf_counter() - started) * 1000


async def main(runs: int) -> None:
    sandbox = Sandbox()
    sandbox.check()
    specs = {"offline": SandboxSpec(), "allow_net": SandboxSpec(allow_net=("example.com",))}
    samples: dict[tuple[str, str], list[float]] = {}
    print(f"sandbox overhead, {runs} runs each (ms; overhead = sandboxed p50 - bare p50)")
    print(f"{'command':<18}{'mode':<11}{'bare p50':>9}{'p99':>8}{'sandbox p50':>13}{'p99':>8}"
          f"{'overhead p50':>14}{'ratio':>7}")  # fmt: skip
    for label, command in COMMANDS.items():
        for mode, spec in specs.items():
            bare_ms: list[float] = []
            boxed_ms: list[float] = []
            for _ in range(5):  # warm caches on both sides
                await bare(command)
                await sandbox.run(command, spec)
            for _ in range(runs):
                bare_ms.append(await timed(lambda c=command: bare(c)))
                boxed_ms.append(
                    await timed(lambda c=command, s=spec: sandbox.run(c, s))  # type: ignore[misc]
                )
            b50, s50 = statistics.median(bare_ms), statistics.median(boxed_ms)
            samples[(label, mode)] = boxed_ms
            print(
                f"{label:<18}{mode:<11}{b50:>9.2f}{percentile(bare_ms, 0.99):>8.2f}"
                f"{s50:>13.2f}{percentile(boxed_ms, 0.99):>8.2f}{s50 - b50:>14.2f}"
                f"{s50 / b50:>7.1f}x"
            )
    # The floor: the same bwrap command line run directly (no cgroup, limits, GNU time,
    # seccomp pipe or output capture), to split the overhead into bwrap/kernel and mezzo.
    argv = build_argv(SandboxSpec(), ["/bin/true"], etc_dir=sandbox.workspace / "etc",
                      bwrap=sandbox.bwrap)  # fmt: skip
    floor = [await timed(lambda: bare(argv)) for _ in range(runs)]
    f50 = statistics.median(floor)
    mezzo50 = statistics.median(samples[("true", "offline")])
    print(f"bwrap alone, same namespaces and mounts, `true`: p50 {f50:.2f} ms, "
          f"p99 {percentile(floor, 0.99):.2f} ms; mezzo's own share of the p50: "
          f"{mezzo50 - f50:.2f} ms")  # fmt: skip
    load = os.getloadavg()[0]
    print(f"load average during the run: {load:.2f} on {os.cpu_count()} cores")
    sandbox.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    asyncio.run(main(parser.parse_args().runs))
