"""The work limit of one tool call: a deadline checked wherever a tool loops.

File tools run in worker threads, which Python cannot kill, so the limit is cooperative: every
chunk read through `TimedSource` and every search loop calls `Deadline.check`, which raises
`WorkLimitReached` (a `QueryError`, shown to the model) once the time is spent. Each check is
one clock read; between two checks a tool does at most one chunk (1 MiB) of linear work.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from mezzo.files.compression import READ_SIZE, ByteSource
from mezzo.files.errors import QueryError


class WorkLimitReached(QueryError):
    """A tool call used its time; `progress` says how far it got."""


class Deadline:
    def __init__(self, name: str, tool: str, seconds: float) -> None:
        self.name = name
        self.tool = tool
        self.seconds = seconds
        self.at = time.monotonic() + seconds

    def expired(self) -> bool:
        return time.monotonic() >= self.at

    def check(self, progress: str = "") -> None:
        if time.monotonic() >= self.at:
            where = f" after {progress}" if progress else ""
            raise WorkLimitReached(
                self.name,
                f"{self.tool} stopped{where}: it ran {self.seconds:g} s, the work limit of one "
                "tool call (MEZZO_FILE_TOOL_SECONDS); ask for a narrower range or pattern",
            )


class TimedSource:
    """A `ByteSource` that checks the deadline before each chunk it reads."""

    def __init__(self, source: ByteSource, deadline: Deadline) -> None:
        self._source = source
        self.deadline = deadline

    def read(self, start: int, end: int) -> bytes:
        self.deadline.check(f"reading to byte {start}")
        return self._source.read(start, end)

    def iter_range(self, start: int, end: int, size: int = READ_SIZE) -> Iterator[bytes]:
        position = start
        for chunk in self._source.iter_range(start, end, size):
            self.deadline.check(f"reading to byte {position}")
            position += len(chunk)
            yield chunk

    def close(self) -> None:
        self._source.close()
