"""Recognise a file's format from its first bytes (after decompression) and its name."""

from __future__ import annotations

import csv
import json

from mezzo.files.errors import FileFormatError
from mezzo.files.models import FileFormat

SNIFF_BYTES = 64 << 10
_EXTENSIONS = {
    FileFormat.FASTA: (".fa", ".fasta", ".fna", ".faa", ".ffn", ".frn", ".fas", ".mfa"),
    FileFormat.FASTQ: (".fq", ".fastq"),
    FileFormat.CSV: (".csv",),
    FileFormat.TSV: (".tsv", ".tab"),
    FileFormat.JSONL: (".jsonl", ".ndjson"),
}
_COMPRESSED_SUFFIXES = (".gz", ".bgz", ".bgzf")


def claimed_format(filename: str) -> FileFormat | None:
    lower = filename.lower()
    for suffix in _COMPRESSED_SUFFIXES:
        lower = lower.removesuffix(suffix)
    for fmt, exts in _EXTENSIONS.items():
        if lower.endswith(exts):
            return fmt
    return None


def looks_binary(head: bytes) -> int | None:
    """Offset of the first byte that makes `head` binary, or None for text."""
    nul = head.find(b"\x00")
    if nul >= 0:
        return nul
    controls = head.translate(None, bytes(range(32, 256)) + b"\t\n\r\f\v\b\x1b")
    if len(controls) > max(2, len(head) // 100):
        return head.find(controls[:1])
    return None


def _non_blank_lines(text: str, limit: int) -> list[str]:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[:limit]


def _is_jsonl(lines: list[str]) -> bool:
    if not lines:
        return False
    try:
        return all(isinstance(json.loads(line), dict | list) for line in lines[:-1] or lines)
    except ValueError:
        return False


def _table_delimiter(text: str) -> str | None:
    lines = _non_blank_lines(text, 20)[:-1] or _non_blank_lines(text, 1)
    if len(lines) < 2:
        return None
    try:
        dialect = csv.Sniffer().sniff("\n".join(lines), delimiters=",\t;|")
    except csv.Error:
        return None
    widths = {len(row) for row in csv.reader(lines, dialect)}
    return dialect.delimiter if len(widths) == 1 and widths.pop() >= 2 else None


def detect_format(head: bytes, filename: str) -> FileFormat:
    claimed = claimed_format(filename)
    head = head.removeprefix(b"\xef\xbb\xbf")
    starts_like_sequence = head.lstrip()[:1] in (b">", b"@")  # their scanners name the record
    binary_at = None if starts_like_sequence else looks_binary(head)
    if binary_at is not None:
        what = f"claims {claimed.value.upper()} by its name but" if claimed else "is binary:"
        raise FileFormatError(
            filename,
            f"{what} byte {binary_at} (0x{head[binary_at]:02x}) is binary; supported formats "
            "are FASTA, FASTQ, CSV, TSV, JSON Lines and text, plain or gzip/bgzip",
            line=head.count(b"\n", 0, binary_at) + 1,
        )
    text = head.decode("utf-8", errors="replace")
    first = text.lstrip()[:1]
    if claimed is FileFormat.FASTA and first != ">":
        raise FileFormatError(filename, "claims FASTA by its name but does not start with '>'")
    if claimed is FileFormat.FASTQ and first != "@":
        raise FileFormatError(filename, "claims FASTQ by its name but does not start with '@'")
    if first == ">":
        return FileFormat.FASTA
    lines = _non_blank_lines(text, 4)
    if first == "@" and len(lines) >= 3 and lines[2].startswith("+"):
        return FileFormat.FASTQ
    if claimed in (FileFormat.CSV, FileFormat.TSV, FileFormat.JSONL):
        return claimed
    if first in "{[" and _is_jsonl(_non_blank_lines(text, 20)):
        return FileFormat.JSONL
    delimiter = _table_delimiter(text)
    if delimiter == "\t":
        return FileFormat.TSV
    if delimiter is not None:
        return FileFormat.CSV
    return FileFormat.TEXT
