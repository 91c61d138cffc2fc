"""What the store knows about one attached file."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class FileFormat(StrEnum):
    FASTA = "fasta"
    FASTQ = "fastq"
    CSV = "csv"
    TSV = "tsv"
    JSONL = "jsonl"
    TEXT = "text"


class Compression(StrEnum):
    NONE = "none"
    GZIP = "gzip"
    BGZF = "bgzf"


class FileInfo(BaseModel):
    id: str
    workspace: str
    name: str
    size: int = Field(description="bytes as uploaded (compressed size for gzip)")
    sha256: str
    format: FileFormat
    compression: Compression = Compression.NONE
    uncompressed_size: int
    created_at: datetime
    summary: dict[str, Any] = Field(default_factory=dict)
