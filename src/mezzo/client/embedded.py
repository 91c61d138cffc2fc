"""The SDK without a server: the same engine in this process (SQLite file, workers as tasks)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from mezzo.client.transport import read_chunks
from mezzo.config import Settings
from mezzo.files.models import FileInfo
from mezzo.protocol import (
    CreateWorkspace,
    Event,
    InputIn,
    RunAccepted,
    RunView,
    SubmitRun,
    ToolResultsIn,
    Workspace,
)
from mezzo.server.auth import OPEN_TENANT
from mezzo.service import Mezzo
from mezzo.text import scrubbed

_shared: Mezzo | None = None


async def shared_mezzo(settings: Settings | None = None) -> Mezzo:
    """One embedded engine per process, started on first use."""
    global _shared
    if _shared is None:
        mezzo = Mezzo(settings)
        await mezzo.start()
        _shared = mezzo
    return _shared


async def shutdown() -> None:
    """Stop the embedded engine: in-flight steps finish or are released."""
    global _shared
    if _shared is not None:
        mezzo, _shared = _shared, None
        await mezzo.stop()


class EmbeddedTransport:
    def __init__(self, mezzo: Mezzo, tenant: str = OPEN_TENANT) -> None:
        self.mezzo = mezzo
        self.tenant = tenant

    async def create_workspace(self, body: CreateWorkspace) -> Workspace:
        workspace, _ = await self.mezzo.create_workspace(self.tenant, body)
        return workspace

    async def get_workspace(self, workspace: str) -> Workspace:
        return await self.mezzo.get_workspace(self.tenant, workspace)

    async def submit(
        self, workspace: str, body: SubmitRun, idempotency_key: str | None
    ) -> RunAccepted:
        accepted, _ = await self.mezzo.submit_run(self.tenant, workspace, body, idempotency_key)
        return accepted

    async def get_run(self, run: str) -> RunView:
        return await self.mezzo.get_run(self.tenant, run)

    async def cancel(self, run: str, reason: str) -> RunView:
        return await self.mezzo.cancel_run(self.tenant, run, reason)

    async def tool_results(self, run: str, body: ToolResultsIn) -> RunView:
        return await self.mezzo.submit_tool_results(self.tenant, run, body)

    async def input(self, run: str, text: str) -> RunView:
        return await self.mezzo.submit_input(self.tenant, run, InputIn(text=text))

    async def throttle(self, workspace: str, rate: float) -> Workspace:
        return await self.mezzo.throttle(self.tenant, workspace, rate)

    async def add_budget(self, workspace: str, tokens: int) -> Workspace:
        return await self.mezzo.add_budget(self.tenant, workspace, tokens)

    async def events(self, workspace: str, after: int, types: Sequence[str] | None) -> list[Event]:
        page = await self.mezzo.events(self.tenant, workspace, after, types)
        return [_as_text(event) for event in page]

    async def subscribe(
        self, workspace: str, after: int, types: Sequence[str] | None
    ) -> AsyncIterator[Event]:
        async for event in self.mezzo.subscribe(self.tenant, workspace, after, types):
            yield _as_text(event)

    async def attach(self, workspace: str, path: Path) -> FileInfo:
        return await self.mezzo.upload_file(self.tenant, workspace, path.name, read_chunks(path))

    async def aclose(self) -> None:
        return None


def _as_text(event: Event) -> Event:
    """The event as the server would send it: a lone surrogate (from a model, or written before
    text was checked) as U+FFFD, so nothing a caller does with it fails."""
    data = scrubbed(event.data)
    return event if data is event.data else event.model_copy(update={"data": data})
