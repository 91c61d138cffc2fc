"""Files attached to workspaces, stored by reference under one root folder.

Layout: `<root>/<workspace>/<file id>/` holds `data` (the bytes as uploaded), `index.sqlite`
(built once, on arrival), `info.json` (the `FileInfo`) and, for a large plain gzip file,
`data.bgz` (a BGZF copy for random access). An upload streams into
`<root>/<workspace>/.incoming/<id>/` and is renamed into place only once it is complete and
indexed, so readers never see half a file. The root can be a shared folder (NFS, a mounted
bucket) when many API nodes and workers share one Redis: nothing here is kept in memory.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from mezzo.bounds import is_id, is_workspace_key
from mezzo.files.compression import BgzfSource, ByteSource, GzipSource, PlainSource
from mezzo.files.errors import FileError, FileNotFound, FileTooLarge
from mezzo.files.index_db import IndexDB
from mezzo.files.indexer import build_index
from mezzo.files.limits import FileLimits
from mezzo.files.models import Compression, FileInfo
from mezzo.files.work import Deadline, TimedSource

if TYPE_CHECKING:
    from mezzo.config import Settings

T = TypeVar("T")


class BlockingLanes(Protocol):
    """Runs blocking work off the event loop, keyed by tenant (`mezzo.tools.lanes`)."""

    async def run(self, tenant: str, function: Callable[..., T], *args: Any) -> T: ...


_WRITE_BATCH = 1 << 20
DATA, INDEX, INFO, SIDECAR = "data", "index.sqlite", "info.json", "data.bgz"


def _checked_id(kind: str, value: str) -> str:
    """A workspace's key or a file's id, as `mezzo.bounds` defines them: a safe folder name."""
    valid = is_workspace_key(value) if kind == "workspace" else is_id(value)
    if not valid:
        raise FileError(f"invalid {kind} id {value!r}")
    return value


def clean_filename(filename: str) -> str:
    name = PurePosixPath(filename.replace("\\", "/")).name.strip()
    return name[:255] or "upload"


@dataclass
class OpenFile:
    """A stored file opened for queries: its info, index and uncompressed byte source."""

    info: FileInfo
    index: IndexDB
    source: ByteSource
    deadline: Deadline | None = None  # the work limit of the tool call that opened it

    def close(self) -> None:
        self.source.close()
        self.index.close()

    def __enter__(self) -> OpenFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FileStore:
    def __init__(
        self,
        root: Path,
        gzip_sidecar_min_bytes: int | None = 64 << 20,
        *,
        limits: FileLimits | None = None,
        lanes: BlockingLanes | None = None,
    ) -> None:
        """`gzip_sidecar_min_bytes`: plain gzip files inflating to at least this many bytes get
        a BGZF copy (`data.bgz`) for random access; None never writes one. `limits` caps what
        a compressed upload may inflate to."""
        self.root = Path(root)
        self.gzip_sidecar_min_bytes = gzip_sidecar_min_bytes
        self.limits = limits or FileLimits()
        self.lanes = lanes

    @classmethod
    def from_settings(cls, settings: Settings) -> FileStore:
        from mezzo.tools.lanes import TenantLanes

        return cls(
            settings.files_root,
            limits=FileLimits(
                max_inflated_bytes=settings.max_inflated_bytes,
                max_inflation_ratio=settings.max_inflation_ratio,
                tool_seconds=settings.file_tool_seconds,
            ),
            lanes=TenantLanes(settings.index_threads, settings.uploads_per_tenant, "mezzo-index"),
        )

    def _dir(self, workspace: str, file_id: str) -> Path:
        return self.root / _checked_id("workspace", workspace) / _checked_id("file", file_id)

    async def save_stream(
        self,
        workspace: str,
        filename: str,
        chunks: AsyncIterator[bytes],
        max_bytes: int,
        *,
        tenant: str | None = None,
    ) -> FileInfo:
        """Stream an upload to disk, checksum it, detect its format and index it.

        Raises `FileTooLarge` past `max_bytes` (bytes received), `InflatedTooLarge` (a
        `FileTooLarge`) when compressed content inflates past `self.limits`, and
        `FileFormatError` for bad content; either way nothing is left behind.
        """
        name = clean_filename(filename)
        file_id = uuid.uuid4().hex[:20]
        final = self._dir(workspace, file_id)
        incoming = self.root / workspace / ".incoming" / file_id
        incoming.mkdir(parents=True)
        try:
            size, digest = await self._receive(incoming / DATA, name, chunks, max_bytes)
            indexed = await self._blocking(
                tenant or workspace,
                build_index,
                incoming / DATA,
                incoming / INDEX,
                name,
                None if self.gzip_sidecar_min_bytes is None else incoming / SIDECAR,
                self.gzip_sidecar_min_bytes or 0,
                self.limits,
            )
            info = FileInfo(
                id=file_id,
                workspace=workspace,
                name=name,
                size=size,
                sha256=digest,
                format=indexed.format,
                compression=indexed.compression,
                uncompressed_size=indexed.uncompressed_size,
                created_at=datetime.now(UTC),
                summary=indexed.summary,
            )
            (incoming / INFO).write_text(info.model_dump_json(indent=1))
            incoming.rename(final)
        except BaseException:
            await asyncio.to_thread(shutil.rmtree, incoming, True)
            raise
        return info

    async def _blocking(self, key: str, function: Callable[..., T], *args: Any) -> T:
        """Index work in `lanes` (a pool of its own, a fair share per tenant) when given."""
        if self.lanes is None:
            return await asyncio.to_thread(function, *args)
        return await self.lanes.run(key, function, *args)

    async def save_file(self, workspace: str, path: Path, max_bytes: int) -> FileInfo:
        """Convenience for local files: stream `path` through `save_stream`."""

        async def chunks() -> AsyncIterator[bytes]:
            with path.open("rb") as f:
                while chunk := await asyncio.to_thread(f.read, 1 << 20):
                    yield chunk

        return await self.save_stream(workspace, path.name, chunks(), max_bytes)

    @staticmethod
    async def _receive(
        target: Path, name: str, chunks: AsyncIterator[bytes], max_bytes: int
    ) -> tuple[int, str]:
        digest = hashlib.sha256()
        size = 0
        pending: list[bytes] = []
        pending_size = 0

        def write(f: object, parts: list[bytes]) -> None:
            for part in parts:
                digest.update(part)
                f.write(part)  # type: ignore[attr-defined]

        with target.open("wb") as f:
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise FileTooLarge(name, max_bytes)
                pending.append(chunk)
                pending_size += len(chunk)
                if pending_size >= _WRITE_BATCH:
                    await asyncio.to_thread(write, f, pending)
                    pending, pending_size = [], 0
            await asyncio.to_thread(write, f, pending)
        return size, digest.hexdigest()

    def clean_incoming(self, older_than_s: float = 3600.0) -> int:
        """Remove uploads abandoned by a crashed process; returns how many were removed."""
        removed = 0
        cutoff = time.time() - older_than_s
        for incoming in self.root.glob("*/.incoming/*"):
            if incoming.stat().st_mtime < cutoff:
                shutil.rmtree(incoming, ignore_errors=True)
                removed += 1
        return removed

    def list(self, workspace: str) -> list[FileInfo]:
        folder = self.root / _checked_id("workspace", workspace)
        if not folder.is_dir():
            return []
        infos = [
            FileInfo.model_validate_json((entry / INFO).read_text())
            for entry in folder.iterdir()
            if not entry.name.startswith(".") and (entry / INFO).is_file()
        ]
        return sorted(infos, key=lambda info: (info.created_at, info.id))

    def get(self, workspace: str, file_id: str) -> FileInfo:
        info_path = self._dir(workspace, file_id) / INFO
        try:
            return FileInfo.model_validate_json(info_path.read_text())
        except FileNotFoundError:
            raise FileNotFound(workspace, file_id) from None

    def delete(self, workspace: str, file_id: str) -> None:
        folder = self._dir(workspace, file_id)
        if not folder.is_dir():
            raise FileNotFound(workspace, file_id)
        trash = folder.with_name(f".deleted-{file_id}-{uuid.uuid4().hex[:6]}")
        folder.rename(trash)
        shutil.rmtree(trash, ignore_errors=True)

    def data_path(self, workspace: str, file_id: str) -> Path:
        return self._dir(workspace, file_id) / DATA

    def open(self, workspace: str, file_id: str, *, tool: str | None = None) -> OpenFile:
        """Open a file for queries. With `tool`, every read is held to the tool call's work
        limit (`limits.tool_seconds`): past it, reads raise `WorkLimitReached`."""
        info = self.get(workspace, file_id)
        folder = self._dir(workspace, file_id)
        index = IndexDB(folder / INDEX)
        data = folder / DATA
        source: ByteSource
        if info.compression is Compression.BGZF:
            source = BgzfSource(data, info.name, index.block_at)
        elif info.compression is Compression.GZIP and (folder / SIDECAR).is_file():
            source = BgzfSource(folder / SIDECAR, info.name, index.block_at)
        elif info.compression is Compression.GZIP:
            source = GzipSource(data, info.name, info.uncompressed_size)
        else:
            source = PlainSource(data)
        if tool is None:
            return OpenFile(info, index, source)
        deadline = Deadline(info.name, tool, self.limits.tool_seconds)
        return OpenFile(info, index, TimedSource(source, deadline), deadline)
