"""The Python SDK: `AgentWorkspace` over HTTP (`MEZZO_URL`) or with the engine embedded.

Importing it loads the wire models and the HTTP transport only; the engine, the store and the
governor are imported when a workspace is opened without a URL (`mezzo.client.embedded`).
"""

from __future__ import annotations

import sys

from mezzo.client.events import AgentEvent
from mezzo.client.workspace import AgentWorkspace

__all__ = ["AgentEvent", "AgentWorkspace", "shutdown"]


async def shutdown() -> None:
    """Stop the embedded engine, if this process started one: in-flight steps finish or are
    released. Nothing to do for a program that only talked HTTP."""
    embedded = sys.modules.get("mezzo.client.embedded")
    if embedded is not None:
        await embedded.shutdown()
