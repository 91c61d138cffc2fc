"""What the SDK needs from mezzo, over HTTP or embedded in the process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Protocol

from mezzo.files.models import FileInfo
from mezzo.protocol import (
    CreateWorkspace,
    Event,
    RunAccepted,
    RunView,
    SubmitRun,
    ToolResultsIn,
    Workspace,
)


class Transport(Protocol):
    async def create_workspace(self, body: CreateWorkspace) -> Workspace: ...
    async def get_workspace(self, workspace: str) -> Workspace: ...
    async def submit(
        self, workspace: str, body: SubmitRun, idempotency_key: str | None
    ) -> RunAccepted: ...
    async def get_run(self, run: str) -> RunView: ...
    async def cancel(self, run: str, reason: str) -> RunView: ...
    async def tool_results(self, run: str, body: ToolResultsIn) -> RunView: ...
    async def input(self, run: str, text: str) -> RunView: ...
    async def throttle(self, workspace: str, rate: float) -> Workspace: ...
    async def add_budget(self, workspace: str, tokens: int) -> Workspace: ...
    async def events(
        self, workspace: str, after: int, types: Sequence[str] | None
    ) -> list[Event]: ...
    def subscribe(
        self, workspace: str, after: int, types: Sequence[str] | None
    ) -> AsyncIterator[Event]: ...
    async def attach(self, workspace: str, path: Path) -> FileInfo: ...
    async def aclose(self) -> None: ...


async def read_chunks(path: Path, size: int = 1 << 20) -> AsyncIterator[bytes]:
    """A file's bytes for an upload, read off the event loop."""
    with path.open("rb") as handle:
        while chunk := await asyncio.to_thread(handle.read, size):
            yield chunk
