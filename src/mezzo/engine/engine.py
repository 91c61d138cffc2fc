"""Carry out the decided steps of a run: model calls through the governor, server-side tools.

`Engine.advance` loads a run, folds it, and loops decide → do → record until the run must wait
or ends. Every store operation names the run version it was decided on, so a worker that lost
its lease (or raced a cancel) gets a conflict, folds again, and never doubles an effect in the
log. Steps that need no round trip of their own leave their events pending (`RunWriter`).
"""

from __future__ import annotations

from mezzo.config import Settings
from mezzo.engine.decide import CallModel, Complete, Done, Fail, RunTool, Start, Wait, decide
from mezzo.engine.model_step import ModelStep
from mezzo.engine.prompt import AttachedFiles
from mezzo.engine.run_writer import RunWriter
from mezzo.engine.snapshot import load_run
from mezzo.engine.state import RunState
from mezzo.engine.tool_step import ToolStep
from mezzo.files.storage import FileStore
from mezzo.governor.governor import Governor
from mezzo.protocol import NewEvent
from mezzo.providers.registry import Providers
from mezzo.store.base import Store, VersionConflict
from mezzo.tools.registry import ToolRegistry
from mezzo.workspaces import WorkspaceRecord, WorkspaceRecords


class Engine:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        providers: Providers,
        tools: ToolRegistry,
        governor: Governor,
        workspaces: WorkspaceRecords,
    ) -> None:
        self.store = store
        self.settings = settings
        self.governor = governor
        self.workspaces = workspaces
        self.files = FileStore.from_settings(settings)
        self.tool_step = ToolStep(tools, self.files, settings.tool_output_max_chars)
        self.model_step = ModelStep(
            store, settings, providers, governor, self.tool_step, AttachedFiles(self.files)
        )

    async def load(self, workspace: str, run: str) -> RunState:
        return await load_run(self.store, workspace, run, self.settings.snapshot_every)

    async def advance(self, workspace: str, run: str) -> str:
        """Advance the run as far as it can go now. Returns why it stopped."""
        state = await self.load(workspace, run)
        if state.version == 0:
            return "unknown run"
        record = await self.workspaces.get(workspace)
        if record is None:
            return "unknown workspace"
        while True:
            writer = RunWriter(self.store, self.settings, state)
            try:
                return await self._steps(writer, record)
            except VersionConflict:
                pass  # someone else moved the run on: fold again, decide again
            finally:
                await writer.close()
            state = await self.load(workspace, run)

    async def _steps(self, writer: RunWriter, record: WorkspaceRecord) -> str:
        """Decide and do steps until the run must wait or ends; raises VersionConflict."""
        workspace, run = writer.state.workspace, writer.state.run
        while True:
            match decide(writer.state):
                case Done() | Wait() as stop:
                    if writer.pending:
                        await writer.append([])
                    await writer.landed()
                    return writer.state.status if isinstance(stop, Done) else stop.reason
                case Start():
                    writer.defer([NewEvent(type="run_started", data={})])
                case Complete(output):
                    await writer.append([NewEvent(type="completed", data={"output": output})])
                case Fail(error):
                    await writer.append([NewEvent(type="failed", data={"error": error})])
                case RunTool(call):
                    writer.defer([await self.tool_step.run(record.tenant, workspace, run, call)])
                case CallModel(number):
                    await self.model_step.run(writer, record, number)
