"""Hostile input against the files layer: peak memory and time of each attack, before a fix
and after it (run it on both commits and compare).

    python bench/hostile_input_bench.py bomb       # 1.3 MB gzip of 1 GiB uploaded: peak RSS
    python bench/hostile_input_bench.py redos      # grep_file '(a+)+$' on lines of 26 'a's
    python bench/hostile_input_bench.py longline   # read_lines over one 256 MiB line: peak RSS
    python bench/hostile_input_bench.py motif      # search_motif max_hits=10**9: peak RSS
    python bench/hostile_input_bench.py range      # read_lines 1..10**9, tail_lines 10**9

Each case runs in a fresh child process so its peak RSS (ru_maxrss) is its own; the baseline
is the same child doing nothing but import mezzo and open the store.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path


def _zeros_gzip(size: int) -> bytes:
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b"0" * (1 << 20)
    return b"".join([*(comp.compress(block) for _ in range(size >> 20)), comp.flush()])


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(case: str, folder: Path) -> dict[str, object]:
    from mezzo.files import FileStore
    from mezzo.files import tools as file_tools

    store = FileStore(folder / "files")
    started = time.perf_counter()
    outcome = "ok"

    def attach(name: str, data_path: Path) -> str:
        named = data_path.rename(data_path.with_name(name))
        return asyncio.run(store.save_file("ws", named, 1 << 40)).id

    def call(tool: str, file_id: str, **kwargs: object) -> str:
        return getattr(file_tools, tool)(store, "ws", file_id, **kwargs)

    try:
        if case == "baseline":
            pass
        elif case == "bomb":
            path = folder / "upload"
            path.write_bytes(_zeros_gzip(1 << 30))
            started = time.perf_counter()
            attach("bomb.txt.gz", path)
        elif case == "redos":
            path = folder / "upload"
            path.write_bytes((b"a" * 26 + b"b\n") * 4)
            file_id = attach("log.txt", path)
            started = time.perf_counter()
            call("grep_file", file_id, pattern="(a+)+$")
        elif case == "longline":
            path = folder / "upload"
            with path.open("wb") as f:
                for _ in range(256):
                    f.write(b"x" * (1 << 20))
                f.write(b"\nshort\n")
            file_id = attach("one-line.txt", path)
            started = time.perf_counter()
            call("read_lines", file_id, start=1, end=2)
        elif case == "motif":
            path = folder / "upload"
            with path.open("wb") as f:
                f.write(b">chr1\n")
                for _ in range(40):
                    f.write(b"ACGTACGTAC" * (1 << 20))
                f.write(b"\n")
            file_id = attach("g.fa", path)
            started = time.perf_counter()
            call("search_motif", file_id, motif="N", max_hits=10**9)
        elif case == "range":
            path = folder / "upload"
            with path.open("wb") as f:
                for block in range(40):
                    f.write(
                        b"".join(
                            b"line %d\n" % i for i in range(block * 100_000, (block + 1) * 100_000)
                        )
                    )
            file_id = attach("many.txt", path)
            started = time.perf_counter()
            call("read_lines", file_id, start=1, end=10**9)
            call("tail_lines", file_id, count=10**9)
        else:
            raise SystemExit(f"unknown case {case}")
    except Exception as exc:  # the outcome is part of the figure
        outcome = f"{type(exc).__name__}: {str(exc)[:120]}"
    return {
        "case": case,
        "seconds": round(time.perf_counter() - started, 3),
        "peak_rss_mib": round(_peak_mib(), 1),
        "outcome": outcome,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("cases", nargs="*", default=["bomb", "redos", "longline", "motif", "range"])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        with tempfile.TemporaryDirectory() as folder:
            print(json.dumps(child(args.child, Path(folder))))
        return
    for case in ["baseline", *args.cases]:
        done = subprocess.run(
            [sys.executable, __file__, "--child", case],
            capture_output=True, text=True, timeout=1800, check=False,
        )  # fmt: skip
        line = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-300:]
        print(line, flush=True)


if __name__ == "__main__":
    main()
