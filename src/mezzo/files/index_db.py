"""The index stored beside each file: one SQLite database, written once when the file arrives.

Tables: `meta` (the summary and parser facts, JSON), `records` (one row per FASTA/FASTQ
record), `blocks` (BGZF block table) and `checkpoints` (line or row number -> byte offset, for
text, CSV and JSON Lines). Lookups are B-tree searches, so the index is never loaded whole.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE records (
    rank INTEGER PRIMARY KEY, name TEXT NOT NULL, description TEXT NOT NULL,
    header_line INTEGER NOT NULL, seq_offset INTEGER NOT NULL, end_offset INTEGER NOT NULL,
    length INTEGER NOT NULL, line_bases INTEGER NOT NULL, line_width INTEGER NOT NULL,
    gc INTEGER NOT NULL, n INTEGER NOT NULL, lower INTEGER NOT NULL, n_runs INTEGER NOT NULL
);
CREATE TABLE blocks (uoffset INTEGER PRIMARY KEY, coffset INTEGER NOT NULL);
CREATE TABLE checkpoints (number INTEGER PRIMARY KEY, offset INTEGER NOT NULL);
"""

RecordRow = tuple[int, str, str, int, int, int, int, int, int, int, int, int, int]


@dataclass(frozen=True, slots=True)
class SeqRecord:
    """One FASTA/FASTQ record as indexed (offsets are uncompressed bytes)."""

    rank: int
    name: str
    description: str
    header_line: int
    seq_offset: int
    end_offset: int
    length: int
    line_bases: int  # bases per full line; 0 when the record's lines are irregular
    line_width: int  # bytes per full line including the terminator
    gc: int
    n: int
    lower: int
    n_runs: int

    @property
    def regular(self) -> bool:
        return self.line_bases > 0


_RECORD_COLS = (
    "rank, name, description, header_line, seq_offset, end_offset, length, "
    "line_bases, line_width, gc, n, lower, n_runs"
)


class IndexDB:
    def __init__(self, path: Path, *, create: bool = False) -> None:
        self.path = path
        if create:
            path.unlink(missing_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        else:
            # written once, never changed: no locks, which also suits network filesystems
            uri = f"{path.absolute().as_uri()}?immutable=1"
            self._db = sqlite3.connect(uri, uri=True, check_same_thread=False)
        if create:
            self._db.execute("PRAGMA journal_mode=OFF")
            self._db.execute("PRAGMA synchronous=OFF")
            self._db.executescript(_SCHEMA)
            self._db.execute("BEGIN")
        else:
            self._db.execute("PRAGMA query_only=ON")

    # --- writing (once, while scanning) ---

    def add_records(self, rows: Iterable[RecordRow]) -> None:
        self._db.executemany(
            f"INSERT INTO records ({_RECORD_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", rows
        )

    def add_block(self, uoffset: int, coffset: int) -> None:
        self._db.execute("INSERT INTO blocks VALUES (?, ?)", (uoffset, coffset))

    def clear_blocks(self) -> None:
        self._db.execute("DELETE FROM blocks")

    def add_checkpoint(self, number: int, offset: int) -> None:
        self._db.execute("INSERT OR IGNORE INTO checkpoints VALUES (?, ?)", (number, offset))

    def set_meta(self, key: str, value: Any) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def commit(self) -> None:
        self._db.execute("CREATE INDEX records_name ON records (name)")
        self._db.execute("COMMIT")

    # --- reading ---

    def meta(self, key: str, default: Any = None) -> Any:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def block_at(self, uoffset: int) -> tuple[int, int] | None:
        row = self._db.execute(
            "SELECT uoffset, coffset FROM blocks WHERE uoffset <= ? ORDER BY uoffset DESC LIMIT 1",
            (uoffset,),
        ).fetchone()
        return (row[0], row[1]) if row else None

    def checkpoint_at(self, number: int) -> tuple[int, int]:
        """The last checkpoint at or before line/row `number`, as (number, byte offset)."""
        row = self._db.execute(
            "SELECT number, offset FROM checkpoints WHERE number <= ? ORDER BY number DESC LIMIT 1",
            (number,),
        ).fetchone()
        return (row[0], row[1]) if row else (1, 0)

    def records_named(self, name: str) -> list[SeqRecord]:
        cur = self._db.execute(f"SELECT {_RECORD_COLS} FROM records WHERE name = ?", (name,))
        return [SeqRecord(*row) for row in cur]

    def record_count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM records").fetchone()[0])

    def records(
        self, glob: str | None = None, offset: int = 0, limit: int = -1
    ) -> Iterator[SeqRecord]:
        where, args = ("WHERE name GLOB ?", [glob]) if glob else ("", [])
        cur = self._db.execute(
            f"SELECT {_RECORD_COLS} FROM records {where} ORDER BY rank LIMIT ? OFFSET ?",
            [*args, limit, offset],
        )
        for row in cur:
            yield SeqRecord(*row)

    def count_matching(self, glob: str | None) -> int:
        if not glob:
            return self.record_count()
        row = self._db.execute("SELECT count(*) FROM records WHERE name GLOB ?", (glob,))
        return int(row.fetchone()[0])

    def lengths_desc(self, glob: str | None = None) -> Iterator[int]:
        where, args = ("WHERE name GLOB ?", (glob,)) if glob else ("", ())
        for (length,) in self._db.execute(
            f"SELECT length FROM records {where} ORDER BY length DESC", args
        ):
            yield length

    def aggregate(self, glob: str | None = None) -> dict[str, int]:
        where, args = ("WHERE name GLOB ?", (glob,)) if glob else ("", ())
        row = self._db.execute(
            "SELECT count(*), coalesce(sum(length),0), coalesce(sum(gc),0), coalesce(sum(n),0),"
            " coalesce(sum(lower),0), coalesce(sum(n_runs),0), coalesce(min(length),0),"
            f" coalesce(max(length),0) FROM records {where}",
            args,
        ).fetchone()
        keys = ("records", "bases", "gc", "n", "lower", "n_runs", "min_length", "max_length")
        return dict(zip(keys, (int(v) for v in row), strict=True))

    def close(self) -> None:
        self._db.close()
