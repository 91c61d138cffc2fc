"""Turn typed Python functions into JSON-schema tools, and run server-side ones."""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError, create_model

from mezzo.protocol import ToolDecl, ToolSide
from mezzo.tools.context import ToolContext
from mezzo.tools.lanes import tool_lanes

ToolFunction = Callable[..., Any] | Callable[..., Awaitable[Any]]


class ToolError(Exception):
    """A tool call that cannot run: unknown tool or arguments that do not match its schema."""


def _first_paragraph(doc: str | None) -> str:
    return inspect.cleandoc(doc or "").split("\n\n", 1)[0].strip()


def _context_parameter(function: ToolFunction) -> str | None:
    """The name of the parameter that receives the `ToolContext`, if the tool takes one."""
    for name, param in inspect.signature(function, eval_str=True).parameters.items():
        if param.annotation is ToolContext:
            return name
    return None


def schema_of(function: ToolFunction) -> dict[str, Any]:
    """The JSON schema of a function's parameters, from its type hints (via pydantic)."""
    for param in inspect.signature(function).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ToolError(f"tool {function.__name__}: *args/**kwargs cannot be described")
    schema = arguments_model(function).model_json_schema()
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
    schema["additionalProperties"] = False
    return schema


def declare(function: ToolFunction, side: ToolSide = "client") -> ToolDecl:
    return ToolDecl(
        name=function.__name__,
        description=_first_paragraph(function.__doc__),
        parameters=schema_of(function),
        side=side,
    )


ToolLike = ToolDecl | Mapping[str, Any] | str | ToolFunction


def tool_decl(tool: ToolLike, where: str = "tool") -> ToolDecl:
    """One declaration from whatever a caller wrote: a `ToolDecl`; a dict in OpenAI's Responses
    or Chat Completions shape or mezzo's own (validated by `ToolDecl`); a typed Python function
    (a client-side tool described by its signature); or the name of a server-side tool."""
    if isinstance(tool, ToolDecl):
        return tool
    if isinstance(tool, str):
        return ToolDecl(name=tool, side="server")
    if isinstance(tool, Mapping):
        return ToolDecl.model_validate(dict(tool))
    if callable(tool):
        return declare(tool, side="client")
    raise TypeError(
        f"{where}: expected a function, a tool dict, a ToolDecl or a server-side tool's name, "
        f"not {type(tool).__name__}"
    )


def arguments_model(function: ToolFunction) -> type[BaseModel]:
    """The model of what the model fills in: every parameter but the `ToolContext`."""
    params = inspect.signature(function).parameters
    context = _context_parameter(function)
    fields: dict[str, Any] = {
        name: (
            Any if p.annotation is inspect.Parameter.empty else p.annotation,
            ... if p.default is inspect.Parameter.empty else p.default,
        )
        for name, p in params.items()
        if name != context
    }
    return create_model(f"{function.__name__}_args", **fields)


@dataclass(frozen=True, slots=True)
class ServerTool:
    decl: ToolDecl
    function: ToolFunction
    arguments: type[BaseModel]

    async def call(self, arguments: dict[str, Any], context: ToolContext | None = None) -> str:
        try:
            validated = self.arguments.model_validate(arguments)
        except ValidationError as exc:
            raise ToolError(f"invalid arguments for {self.decl.name}: {exc}") from exc
        kwargs = {name: getattr(validated, name) for name in type(validated).model_fields}
        wanted = _context_parameter(self.function)
        if wanted is not None:
            if context is None:
                raise ToolError(f"{self.decl.name} needs the caller's tenant and workspace")
            kwargs[wanted] = context
        if inspect.iscoroutinefunction(self.function):
            result = await self.function(**kwargs)
        else:  # its own pool, and a fair share of it per tenant
            tenant = context.tenant if context is not None else ""
            result = await tool_lanes().run(tenant, self.function, **kwargs)
        return result if isinstance(result, str) else json.dumps(result, default=str)


class ToolRegistry:
    """The server-side tools a deployment offers. Workspaces name them in their config."""

    def __init__(self) -> None:
        self._tools: dict[str, ServerTool] = {}
        self._off: dict[str, str] = {}

    def register(self, function: ToolFunction, name: str | None = None) -> ServerTool:
        decl = declare(function, side="server")
        if name is not None:
            decl = decl.model_copy(update={"name": name})
        tool = ServerTool(decl, function, arguments_model(function))
        self._tools[decl.name] = tool
        return tool

    def switch_off(self, name: str, reason: str) -> None:
        """Stop offering `name` (it cannot run safely here); `reason` says why and how to fix."""
        if self._tools.pop(name, None) is not None:
            self._off[name] = reason

    def off(self) -> dict[str, str]:
        """The tools switched off, each with its reason."""
        return dict(self._off)

    def unavailable(self, name: str) -> str:
        """Why `name` cannot be used: switched off (and why), or unknown."""
        if name in self._off:
            return f"server-side tool {name!r} is off here: {self._off[name]}"
        known = ", ".join(self.names()) or "none"
        return f"unknown server-side tool {name!r}; known: {known}"

    def get(self, name: str) -> ServerTool:
        tool = self._tools.get(name)
        if tool is None:
            raise ToolError(self.unavailable(name))
        return tool

    def names(self) -> list[str]:
        return sorted(self._tools)

    def __contains__(self, name: object) -> bool:
        return name in self._tools
