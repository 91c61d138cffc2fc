"""Errors a user can cause with a file: each names the file and, where known, record and line."""

from __future__ import annotations


class FileError(Exception):
    """Base of every error the files layer raises on purpose."""


class FileTooLarge(FileError):
    def __init__(self, name: str, max_bytes: int) -> None:
        super().__init__(f"{name}: upload exceeds the limit of {max_bytes} bytes")
        self.name = name
        self.max_bytes = max_bytes


class InflatedTooLarge(FileTooLarge):
    """A compressed upload that inflates past the size or ratio limit (a decompression bomb)."""

    def __init__(self, name: str, problem: str, max_bytes: int) -> None:
        FileError.__init__(self, f"{name}: {problem}")
        self.name = name
        self.max_bytes = max_bytes


class FileNotFound(FileError):
    def __init__(self, workspace: str, file_id: str) -> None:
        super().__init__(f"no file {file_id!r} in workspace {workspace!r}")


class FileFormatError(FileError):
    """The bytes do not follow the format; names file, record and line where known."""

    def __init__(
        self,
        name: str,
        problem: str,
        *,
        line: int | None = None,
        record: str | None = None,
    ) -> None:
        where = []
        if record is not None:
            where.append(f"record {record!r}")
        if line is not None:
            where.append(f"line {line}")
        place = f" ({', '.join(where)})" if where else ""
        super().__init__(f"{name}{place}: {problem}")
        self.name = name
        self.problem = problem
        self.line = line
        self.record = record


class QueryError(FileError):
    """A tool call asked for something the file cannot answer (bad region, motif, column)."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name
        self.problem = problem
