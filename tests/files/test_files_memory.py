"""Memory stays flat while a multi-GB FASTA, generated on the fly, streams through the parser."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

from mezzo.files.fasta import FastaScanner
from mezzo.files.index_db import IndexDB

TOTAL = 1 << 30  # 1 GiB of FASTA, never on disk (2 GiB took ~40 s on the 2 shared cores)
BLOCK = 4 << 20


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def sequence_block(rng: random.Random) -> bytes:
    unit = "".join(rng.choice("ACGT") for _ in range(6000)) + "N" * 300 + "acgtn" * 140
    seq = (unit * (BLOCK // len(unit) + 1))[: BLOCK // 61 * 60]
    return "".join(seq[i : i + 60] + "\n" for i in range(0, len(seq), 60)).encode()


def generated_fasta(samples: list[int]) -> Iterator[bytes]:
    block = sequence_block(random.Random(1))
    sent = 0
    chrom = 0
    while sent < TOTAL:
        if sent % (256 << 20) < len(block):
            header = f">chr{chrom} generated\n".encode()
            chrom += 1
            sent += len(header)
            yield header
        sent += len(block)
        yield block
        samples.append(rss_kib())


def test_memory_is_flat_on_a_1_gib_fasta(tmp_path: Path) -> None:
    index = IndexDB(tmp_path / "index.sqlite", create=True)
    scanner = FastaScanner("generated.fa", index)
    samples: list[int] = []
    chunks = generated_fasta(samples)
    for chunk in chunks:
        scanner.feed(chunk)
    summary = scanner.finish()
    index.commit()
    assert summary["lengths"]["bases"] > TOTAL * 60 // 61 - 1000
    assert summary["records"] == 4 and summary["irregular_records"] == 0
    warm = samples[len(samples) // 10]
    growth_mib = (max(samples[len(samples) // 10 :]) - warm) / 1024
    assert growth_mib < 16, f"RSS grew {growth_mib:.1f} MiB over {TOTAL >> 20} MiB of input"
    assert max(samples) - min(samples) < 96 * 1024  # a few chunks' worth at most, not the file
