"""The model request of a run's next step: instructions, attached files, transcript, tools."""

from __future__ import annotations

import asyncio
import os
import time

from mezzo.engine.state import RunState
from mezzo.files.models import FileInfo
from mezzo.files.storage import FileStore
from mezzo.files.tools import summary_for_context
from mezzo.protocol import ToolDecl, WorkspaceConfig
from mezzo.providers.base import Message, ModelRequest, ToolSpec
from mezzo.tools.builtin import HUMAN_INPUT_TOOL

# A folder changed less than this long ago may change again within the same mtime tick.
_SETTLED_S = 1.0


class AttachedFiles:
    """A workspace's attached files, listed again only when its folder changed."""

    def __init__(self, files: FileStore, size: int = 4096) -> None:
        self.files = files
        self.size = size
        self._listed: dict[str, tuple[int, list[FileInfo]]] = {}

    async def list(self, workspace: str) -> list[FileInfo]:
        try:
            changed = os.stat(self.files.root / workspace).st_mtime_ns
        except (FileNotFoundError, ValueError):
            return []
        known = self._listed.get(workspace)
        if known is not None and known[0] == changed:
            return known[1]
        infos = await asyncio.to_thread(self.files.list, workspace)
        if time.time() - changed / 1e9 > _SETTLED_S:
            if len(self._listed) >= self.size:
                self._listed.clear()
            self._listed[workspace] = (changed, infos)
        return infos


def build_request(
    state: RunState,
    config: WorkspaceConfig,
    model: str,
    files: list[FileInfo],
    file_tools: list[ToolDecl],
) -> ModelRequest:
    messages: list[Message] = []
    context = [config.instructions] if config.instructions else []
    if files:
        context.append(
            "Files attached to this workspace (read them with the file tools, by file_id):\n"
            + "\n".join(summary_for_context(info) for info in files)
        )
    if context:
        messages.append(Message(role="system", content="\n\n".join(context)))
    messages.extend(state.transcript)
    decls = [*config.tools, HUMAN_INPUT_TOOL] if config.human_input else list(config.tools)
    if files:
        decls.extend(file_tools)
    tools = tuple(ToolSpec(d.name, d.description, d.parameters, d.strict) for d in decls)
    return ModelRequest(model=model, messages=tuple(messages), tools=tools)
