"""What a server-side tool may know about the call: whose it is. A tool function asks for it
with a parameter annotated `ToolContext`; the registry fills it in and never shows it to the
model (it is not in the JSON schema), so the model cannot choose the tenant or workspace."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ToolContext:
    tenant: str
    workspace: str
