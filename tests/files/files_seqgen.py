"""Generated sequence files for the tests, with the naive truths to check against."""

from __future__ import annotations

import gzip
import random
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Rec:
    name: str
    seq: str
    quality: str = ""


def random_records(rng: random.Random, count: int, max_len: int = 5000) -> list[Rec]:
    records = []
    for i in range(count):
        length = rng.choice([0, 1, rng.randint(1, 80), rng.randint(1, max_len)])
        parts: list[str] = []
        while sum(map(len, parts)) < length:
            roll = rng.random()
            piece_len = rng.randint(1, 200)
            if roll < 0.1:
                parts.append("N" * rng.randint(1, 50))
            elif roll < 0.3:
                parts.append("".join(rng.choice("acgtn") for _ in range(piece_len)))
            else:
                parts.append("".join(rng.choice("ACGT") for _ in range(piece_len)))
        records.append(Rec(f"seq{i}|x:{rng.randint(0, 99)}", "".join(parts)[:length]))
    return records


def fasta_text(records: list[Rec], rng: random.Random, crlf: bool = False) -> str:
    nl = "\r\n" if crlf else "\n"
    out = []
    for rec in records:
        width = rng.choice([50, 60, 61, 80, max(1, len(rec.seq))])
        out.append(f">{rec.name} some description{nl}")
        out.extend(rec.seq[i : i + width] + nl for i in range(0, len(rec.seq), width))
    return "".join(out)


def fastq_text(records: list[Rec]) -> str:
    return "".join(f"@{r.name}\n{r.seq}\n+\n{r.quality}\n" for r in records)


def random_reads(rng: random.Random, count: int) -> list[Rec]:
    reads = []
    for i in range(count):
        length = rng.randint(30, 150)
        seq = "".join(rng.choice("ACGTN" if rng.random() < 0.05 else "ACGT") for _ in range(length))
        qual = "".join(chr(33 + rng.choice([2, 12, 23, 37, 40])) for _ in range(length))
        reads.append(Rec(f"read{i}", seq, qual))
    return reads


def bgzf_compress(data: bytes, block: int = 60_000) -> bytes:
    """A minimal BGZF writer (blocked gzip members with the 'BC' extra field and EOF block)."""
    out = []
    for i in range(0, len(data), block):
        piece = data[i : i + block]
        comp = zlib.compressobj(6, zlib.DEFLATED, -15)
        payload = comp.compress(piece) + comp.flush()
        header = struct.pack(
            "<4BI2BH2BHH", 31, 139, 8, 4, 0, 0, 255, 6, 66, 67, 2, len(payload) + 25
        )
        out.append(header + payload + struct.pack("<II", zlib.crc32(piece), len(piece)))
    out.append(bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000"))
    return b"".join(out)


def write(path: Path, text: str, compression: str = "none") -> Path:
    data = text.encode()
    if compression == "gzip":
        data = gzip.compress(data)
    elif compression == "bgzf":
        data = bgzf_compress(data)
    path.write_bytes(data)
    return path
