"""A server-side tool step: run the tool the model called and make its `tool_result` event."""

from __future__ import annotations

from mezzo import tracing
from mezzo.files.storage import FileStore
from mezzo.files.tools import FILE_TOOLS, bind_file_tools
from mezzo.protocol import NewEvent, ToolCallData, ToolDecl
from mezzo.tools.builtin import HUMAN_INPUT_TOOL
from mezzo.tools.context import ToolContext
from mezzo.tools.registry import ServerTool, ToolError, ToolRegistry, arguments_model, declare

FILE_TOOL_NAMES = frozenset(tool.__name__ for tool in FILE_TOOLS)


class ToolStep:
    def __init__(self, tools: ToolRegistry, files: FileStore, output_max_chars: int) -> None:
        self.tools = tools
        self.files = files
        self.output_max_chars = output_max_chars
        self._bound_file_tools: dict[str, dict[str, ServerTool]] = {}

    def file_tools(self, workspace: str) -> dict[str, ServerTool]:
        """The file tools bound to this workspace (its files, the model's token cap)."""
        tools = self._bound_file_tools.get(workspace)
        if tools is None:
            tools = {}
            for function in bind_file_tools(self.files, workspace):
                decl = declare(function, side="server")
                tools[decl.name] = ServerTool(decl, function, arguments_model(function))
            if len(self._bound_file_tools) >= 1024:
                self._bound_file_tools.clear()
            self._bound_file_tools[workspace] = tools
        return tools

    def file_tool_decls(self, workspace: str) -> list[ToolDecl]:
        return [tool.decl for tool in self.file_tools(workspace).values()]

    async def run(self, tenant: str, workspace: str, run: str, call: ToolCallData) -> NewEvent:
        is_error = False
        try:
            tool = self.file_tools(workspace).get(call.name) or self.tools.get(call.name)
            with tracing.span("mezzo.tool", tool=call.name, run=run):
                output = await tool.call(call.arguments, ToolContext(tenant, workspace))
        except ToolError as exc:
            output, is_error = str(exc), True
        except Exception as exc:  # a tool's own failure is the model's to handle
            output, is_error = f"{type(exc).__name__}: {exc}", True
        limit = self.output_max_chars
        if len(output) > limit:
            output = output[:limit] + f"\n[truncated, {len(output) - limit} more characters]"
        result = {
            "call_id": call.call_id,
            "name": call.name,
            "output": output,
            "is_error": is_error,
        }
        return NewEvent(type="tool_result", data=result)


def tool_side(tools: list[ToolDecl], name: str) -> str:
    """Who runs a tool the model called: the server for built-ins and file tools, else as
    declared; a tool nobody declared goes to the client (it answers with an error)."""
    if name == HUMAN_INPUT_TOOL.name or name in FILE_TOOL_NAMES:
        return "server"
    for decl in tools:
        if decl.name == name:
            return decl.side
    return "client"
