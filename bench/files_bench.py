"""Benchmark: parse + index throughput, peak memory and random slice latency on a generated
multi-GB FASTA, against Biopython SeqIO and pyfaidx on the same file in the same run.

    .venv/bin/python bench/files_bench.py --size-mb 2048
    .venv/bin/python bench/files_bench.py --other-formats   # FASTQ, CSV, JSONL, log vs stdlib
    .venv/bin/python bench/files_bench.py --gzip-mb 512      # plain gzip: BGZF copy or not

Biopython and pyfaidx are installed into a throwaway venv under /tmp (not project deps).
Each contender runs in its own subprocess so its peak RSS (ru_maxrss) is its own.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import subprocess
import sys
import tempfile
import textwrap
import venv
from pathlib import Path

BENCH_VENV = Path(tempfile.gettempdir()) / "mezzo-files-bench-venv"
CHROMOSOMES = 8
SLICES = 300
SLICE_LEN = 1000


def generate(path: Path, size_mb: int) -> list[tuple[str, int]]:
    rng = random.Random(1)
    unit = "".join(rng.choice("ACGT") for _ in range(50_000)) + "N" * 500
    unit += "".join(rng.choice("acgt") for _ in range(8000))
    block_seq = unit * 70  # ~4 MB of bases
    block = "".join(block_seq[i : i + 60] + "\n" for i in range(0, len(block_seq), 60)).encode()
    per_chrom = size_mb * (1 << 20) // CHROMOSOMES // len(block)
    layout = []
    with path.open("wb") as f:
        for c in range(CHROMOSOMES):
            f.write(f">chr{c + 1} generated\n".encode())
            for _ in range(per_chrom):
                f.write(block)
            layout.append((f"chr{c + 1}", per_chrom * len(block_seq)))
    return layout


MEZZO = """
import json, random, resource, sys, time
from pathlib import Path
from mezzo.files.compression import PlainSource
from mezzo.files.index_db import IndexDB
from mezzo.files.indexer import build_index
from mezzo.files.sequences import SequenceQuery
path, index_path, slices = Path(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3])
t, c = time.perf_counter(), time.process_time()
indexed = build_index(path, index_path, path.name)
parse, cpu = time.perf_counter() - t, time.process_time() - c
query = SequenceQuery(path.name, PlainSource(path), IndexDB(index_path))
lat = []
for name, a, b in slices:
    t = time.perf_counter()
    seq = query.fetch(query.span(f"{name}:{a}-{b}"))
    lat.append(time.perf_counter() - t)
    assert len(seq) == b - a + 1
gc = indexed.summary["gc_fraction"]
motifs = {}
for motif in ("GAATTC", "GGNCC", "TATAWAWR"):
    c = time.process_time()
    hits, total = query.search(motif, ["chr1:1-20000000"], max_hits=50)
    motifs[motif] = [total, 20 / (time.process_time() - c)]
print(json.dumps({"parse_s": parse, "cpu_s": cpu, "lat": lat, "gc": gc, "motifs": motifs,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

BIOPYTHON = """
import json, resource, sys, time
from Bio import SeqIO
t, c = time.perf_counter(), time.process_time()
gc = total = n = 0
for rec in SeqIO.parse(sys.argv[1], "fasta"):
    s = str(rec.seq).upper()
    gc += s.count("G") + s.count("C"); n += s.count("N"); total += len(s)
print(json.dumps({"parse_s": time.perf_counter() - t, "cpu_s": time.process_time() - c,
                  "gc": round(gc / (total - n), 4),
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

PYFAIDX = """
import json, os, resource, sys, time
from pyfaidx import Fasta
path, slices = sys.argv[1], json.loads(sys.argv[3])
if os.path.exists(path + ".fai"):
    os.remove(path + ".fai")
t, c = time.perf_counter(), time.process_time()
fa = Fasta(path, sequence_always_upper=False)
parse, cpu = time.perf_counter() - t, time.process_time() - c
lat = []
for name, a, b in slices:
    t = time.perf_counter()
    seq = str(fa[name][a - 1 : b])
    lat.append(time.perf_counter() - t)
    assert len(seq) == b - a + 1
print(json.dumps({"parse_s": parse, "cpu_s": cpu, "lat": lat,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def bench_python() -> Path | None:
    python = BENCH_VENV / "bin" / "python"
    if not python.exists():
        venv.create(BENCH_VENV, with_pip=True)
    ok = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "biopython", "pyfaidx"],
        capture_output=True,
        text=True,
    )
    if ok.returncode != 0:
        print(f"baselines unavailable (pip failed): {ok.stderr.strip()[-300:]}")
        return None
    return python


def run(python: str, code: str, *args: str) -> dict:
    out = subprocess.run(
        [python, "-c", textwrap.dedent(code), *args], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


OTHER = """
import csv, json, sys, time
from pathlib import Path
from mezzo.files.indexer import build_index
path, kind = Path(sys.argv[1]), sys.argv[2]
c = time.process_time()
if kind == "mezzo":
    build_index(path, Path(str(path) + ".idx"), path.name)
elif path.suffix == ".csv":
    with path.open(newline="") as f:
        for row in csv.reader(f):
            pass
elif path.suffix == ".jsonl":
    with path.open("rb") as f:
        for line in f:
            json.loads(line)
elif path.suffix == ".fq":
    with path.open("rb") as f:
        while f.readline():
            seq = f.readline(); f.readline(); qual = f.readline()
            assert len(seq) == len(qual)
else:
    with path.open("rb") as f:
        for line in f:
            pass
print(json.dumps({"cpu_s": time.process_time() - c}))
"""


def other_formats(work: Path) -> None:
    rng = random.Random(5)
    files = {"reads.fq": work / "reads.fq", "table.csv": work / "table.csv"}
    files["events.jsonl"] = work / "events.jsonl"
    files["app.log"] = work / "app.log"
    with files["reads.fq"].open("w") as f:
        seq = "".join(rng.choice("ACGT") for _ in range(10_000))
        qual = "".join(rng.choice("#-8F") for _ in range(10_000))
        for i in range(400_000):
            at = rng.randrange(9_000)
            f.write(f"@read{i} len=150\n{seq[at : at + 150]}\n+\n{qual[at : at + 150]}\n")
    with files["table.csv"].open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "name", "age", "city", "score", "flag"])
        for i in range(300_000):
            writer.writerow(
                [i, f"person {i}", rng.randint(1, 90), rng.choice(["Berlin", "Lima", "Oslo"]),
                 f"{rng.random() * 100:.3f}", rng.choice(["true", "false"])]
            )  # fmt: skip
    with files["events.jsonl"].open("w") as f:
        for i in range(200_000):
            event = {"id": i, "user": {"name": f"u{i % 7}"}, "ok": i % 3 == 0, "msg": "hello"}
            f.write(json.dumps(event) + "\n")
    with files["app.log"].open("w") as f:
        for i in range(1_000_000):
            level = rng.choice(["INFO", "WARN", "ERROR", "DEBUG"])
            f.write(f"2026-01-01 12:00:{i % 60:02d} {level} request {i} took {i % 999}ms\n")
    print(
        f"{'file':14} {'MiB':>6} {'mezzo MB/s CPU':>15} {'stdlib loop MB/s CPU':>21} {'ratio':>6}"
    )
    for name, path in files.items():
        size = path.stat().st_size / (1 << 20)
        ours = run(sys.executable, OTHER, str(path), "mezzo")["cpu_s"]
        floor = run(sys.executable, OTHER, str(path), "stdlib")["cpu_s"]
        print(
            f"{name:14} {size:6.1f} {size / ours:15.1f} {size / floor:21.1f} {floor / ours:5.2f}x"
        )


GZIP_CHILD = """
import asyncio, json, random, sys, time
from pathlib import Path
from mezzo.files import FileStore
from mezzo.files.sequences import SequenceQuery
root, path, threshold, slices = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]
store = FileStore(root, gzip_sidecar_min_bytes=None if threshold == "off" else int(threshold))
c = time.process_time()
info = asyncio.run(store.save_file("ws", path, 1 << 40))
upload_cpu = time.process_time() - c
folder = store.data_path("ws", info.id).parent
copy = folder / "data.bgz"
lat = []
for name, a, b in json.loads(slices):
    t = time.perf_counter()
    with store.open("ws", info.id) as opened:  # a fresh open, as each tool call does
        query = SequenceQuery(info.name, opened.source, opened.index)
        assert len(query.fetch(query.span(f"{name}:{a}-{b}"))) == b - a + 1
    lat.append(time.perf_counter() - t)
print(json.dumps({"upload_cpu": upload_cpu, "lat": lat,
                  "copy_mb": copy.stat().st_size / 2**20 if copy.exists() else 0}))
"""


def gzip_bench(work: Path, size_mb: int) -> None:
    import gzip
    import shutil

    fasta = work / "genome.fa"
    layout = generate(fasta, size_mb)
    packed = work / "genome.fa.gz"
    with fasta.open("rb") as src, gzip.open(packed, "wb", compresslevel=6) as dst:
        shutil.copyfileobj(src, dst, 4 << 20)
    fasta.unlink()
    rng = random.Random(3)
    slices = []
    for _ in range(20):
        name, length = rng.choice(layout)
        a = rng.randint(1, length - SLICE_LEN)
        slices.append((name, a, a + SLICE_LEN - 1))
    mib = packed.stat().st_size / (1 << 20)
    print(
        f"gzip -6 FASTA: {mib:.0f} MiB compressed, {size_mb} MiB inflated; 20 random "
        f"{SLICE_LEN}-base slices, one process, each through a fresh store.open"
    )
    print(
        f"{'store':28} {'upload CPU s':>12} {'copy MiB':>9} {'slice p50 ms':>13} "
        f"{'first slice ms':>15}"
    )
    for label, threshold in (("BGZF copy", "0"), ("no copy (checkpoints)", "off")):
        root = work / f"store-{threshold}"
        r = run(sys.executable, GZIP_CHILD, str(root), str(packed), threshold, json.dumps(slices))
        print(
            f"{label:28} {r['upload_cpu']:12.1f} {r['copy_mb']:9.0f} "
            f"{percentile(r['lat'], 0.5) * 1e3:13.1f} {r['lat'][0] * 1e3:15.1f}"
        )
        shutil.rmtree(root)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=int, default=2048)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--other-formats", action="store_true")
    parser.add_argument("--gzip-mb", type=int, default=0)
    args = parser.parse_args()
    if args.other_formats or args.gzip_mb:
        import shutil

        work = Path(tempfile.mkdtemp(dir=args.dir, prefix="mezzo-files-bench-"))
        try:
            if args.other_formats:
                other_formats(work)
            else:
                gzip_bench(work, args.gzip_mb)
        finally:
            shutil.rmtree(work)
        return
    work = Path(tempfile.mkdtemp(dir=args.dir, prefix="mezzo-files-bench-"))
    fasta = work / "genome.fa"
    layout = generate(fasta, args.size_mb)
    size_mb = fasta.stat().st_size / (1 << 20)
    rng = random.Random(2)
    slices = []
    for _ in range(SLICES):
        name, length = rng.choice(layout)
        a = rng.randint(1, length - SLICE_LEN)
        slices.append((name, a, a + SLICE_LEN - 1))
    print(
        f"file: {size_mb:.0f} MiB, {CHROMOSOMES} records, 60-column lines; {SLICES} random "
        f"{SLICE_LEN}-base slices"
    )
    results = {
        "mezzo": run(sys.executable, MEZZO, str(fasta), str(work / "idx"), json.dumps(slices))
    }
    python = bench_python()
    if python is not None:
        results["biopython SeqIO (parse + GC)"] = run(str(python), BIOPYTHON, str(fasta))
        results["pyfaidx (build .fai)"] = run(
            str(python), PYFAIDX, str(fasta), "", json.dumps(slices)
        )
    base = results["mezzo"]["cpu_s"]
    print(
        f"{'contender':30} {'MB/s wall':>9} {'MB/s CPU':>9} {'CPU vs mezzo':>12} "
        f"{'peak RSS MiB':>12} {'slice p50 µs':>12} {'p95 µs':>7}"
    )
    for name, r in results.items():
        lat = r.get("lat")
        p50 = f"{percentile(lat, 0.5) * 1e6:.0f}" if lat else "-"
        p95 = f"{percentile(lat, 0.95) * 1e6:.0f}" if lat else "-"
        print(
            f"{name:30} {size_mb / r['parse_s']:9.1f} {size_mb / r['cpu_s']:9.1f} "
            f"{base / r['cpu_s']:11.2f}x {r['rss_mb']:12.0f} {p50:>12} {p95:>7}"
        )
    for motif, (total, speed) in results["mezzo"]["motifs"].items():
        print(
            f"mezzo motif search {motif} on chr1:1-20000000: {total} hits, {speed:.0f} Mbases/s CPU"
        )
    if "gc" in results.get("biopython SeqIO (parse + GC)", {}):
        print(
            f"GC agrees: mezzo {results['mezzo']['gc']} biopython "
            f"{results['biopython SeqIO (parse + GC)']['gc']}"
        )
    for path in work.iterdir():
        path.unlink()
    work.rmdir()


if __name__ == "__main__":
    main()
