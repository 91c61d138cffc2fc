"""The server-side tools every deployment offers, and the one that asks a human."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mezzo.protocol import ToolDecl
from mezzo.tools.lanes import configure_tool_lanes
from mezzo.tools.registry import ToolRegistry
from mezzo.tools.scan import ScanAccess, scan_tool

if TYPE_CHECKING:
    from mezzo.config import Settings

HUMAN_INPUT_TOOL = ToolDecl(
    name="request_human_input",
    description="Ask the human operator a question and wait for the answer.",
    parameters={
        "type": "object",
        "properties": {"question": {"type": "string", "description": "What to ask."}},
        "required": ["question"],
        "additionalProperties": False,
    },
    side="server",
)


async def run_code(language: str, code: str) -> str:
    """Run Python or shell code in an isolated sandbox and return its stdout and stderr.

    `language` is "python" or "shell"; the network is off and time and memory are limited.
    """
    from mezzo.sandbox.tool import render_result
    from mezzo.sandbox.tool import run_code as sandbox_run_code

    if language not in ("python", "shell"):
        return f"error: language must be 'python' or 'shell', not {language!r}"
    result = await sandbox_run_code(language, code)  # type: ignore[arg-type]
    return render_result(result)


def default_registry(settings: Settings | None = None) -> ToolRegistry:
    """`run_code`, and `scan_infrastructure` limited to what each workspace owns (off for
    tenants the operator has not enabled)."""
    from mezzo.files.storage import FileStore
    from mezzo.workspaces import configured_key

    access = ScanAccess()
    if settings is not None:
        configure_tool_lanes(settings.tool_threads, settings.tool_calls_per_tenant)
        access = ScanAccess(
            frozenset(settings.scan_tenants),
            {configured_key(name): folder for name, folder in settings.scan_folders.items()},
            FileStore.from_settings(settings),
        )
    registry = ToolRegistry()
    registry.register(run_code)
    registry.register(scan_tool(access))
    return registry
