"""One pass over a stored file: detect compression and format, scan, write the index."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mezzo.files.compression import BgzfWriter, detect_compression, uncompressed_chunks
from mezzo.files.detect import SNIFF_BYTES, detect_format
from mezzo.files.errors import FileFormatError
from mezzo.files.fasta import FastaScanner
from mezzo.files.fastq import FastqScanner
from mezzo.files.index_db import IndexDB
from mezzo.files.jsonl import JsonlScanner
from mezzo.files.limits import FileLimits
from mezzo.files.models import Compression, FileFormat
from mezzo.files.tables import TableScanner, sniff_dialect
from mezzo.files.text import TextScanner


@dataclass(frozen=True)
class Indexed:
    format: FileFormat
    compression: Compression
    uncompressed_size: int
    summary: dict[str, Any]
    sidecar: bool = False  # a BGZF copy of a plain gzip file was written for random access


class _Counted:
    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = chunks
        self.size = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            self.size += len(chunk)
            yield chunk


def scan_chunks(
    chunks: Iterable[bytes], fmt: FileFormat, name: str, index: IndexDB, head: bytes = b""
) -> dict[str, Any]:
    """Run the format's scanner over uncompressed bytes; returns the summary."""
    if fmt in (FileFormat.FASTA, FileFormat.FASTQ):
        scanner: FastaScanner | FastqScanner = (
            FastaScanner(name, index) if fmt is FileFormat.FASTA else FastqScanner(name, index)
        )
        for chunk in chunks:
            scanner.feed(chunk)
        return scanner.finish()
    if fmt in (FileFormat.CSV, FileFormat.TSV):
        dialect = sniff_dialect(
            head.decode("utf-8", errors="replace"), "\t" if fmt is FileFormat.TSV else ","
        )
        return TableScanner(name, index, dialect).run(chunks)
    if fmt is FileFormat.JSONL:
        return JsonlScanner(name, index).run(chunks)
    return TextScanner(name, index).run(chunks)


def _head(path: Path, compression: Compression, name: str) -> bytes:
    parts: list[bytes] = []
    size = 0
    chunks = uncompressed_chunks(path, compression, name)
    try:
        for chunk in chunks:
            parts.append(chunk)
            size += len(chunk)
            if size >= SNIFF_BYTES:
                break
    except FileFormatError:
        if not parts:
            raise
        # otherwise the full scan reports the damage, with its position
    finally:
        chunks.close()  # type: ignore[attr-defined]
    return b"".join(parts)[:SNIFF_BYTES]


def _teed(chunks: Iterable[bytes], writer: BgzfWriter) -> Iterator[bytes]:
    for chunk in chunks:
        writer.write(chunk)
        yield chunk


def build_index(
    path: Path,
    index_path: Path,
    name: str,
    sidecar: Path | None = None,
    sidecar_min_bytes: int = 64 << 20,
    limits: FileLimits | None = None,
) -> Indexed:
    """Scan `path` once and write its index. For plain gzip, when `sidecar` is given, also
    write a BGZF copy there (kept if the file inflates to at least `sidecar_min_bytes`).
    A compressed file that inflates past `limits` raises `InflatedTooLarge`."""
    limits = limits or FileLimits()
    with path.open("rb") as f:
        compression = detect_compression(f.read(64))
    head = _head(path, compression, name)
    if not head:
        raise FileFormatError(name, "the file is empty")
    fmt = detect_format(head, name)
    index = IndexDB(index_path, create=True)
    copy = sidecar if compression is Compression.GZIP else None
    try:
        with contextlib.ExitStack() as stack:
            chunks = uncompressed_chunks(
                path, compression, name, index.add_block, limits.guard(name)
            )
            if copy is not None:
                writer = BgzfWriter(stack.enter_context(copy.open("wb")), index.add_block)
                chunks = _teed(chunks, writer)
            counted = _Counted(chunks)
            summary = scan_chunks(counted, fmt, name, index, head)
            if copy is not None:
                writer.close()
        if copy is not None and counted.size < sidecar_min_bytes:
            copy.unlink()
            index.clear_blocks()
            copy = None
        for key, value in (
            ("format", fmt.value),
            ("compression", compression.value),
            ("uncompressed_size", counted.size),
            ("summary", summary),
            ("sidecar", copy is not None),
        ):
            index.set_meta(key, value)
        index.commit()
    finally:
        index.close()
    return Indexed(fmt, compression, counted.size, summary, copy is not None)
