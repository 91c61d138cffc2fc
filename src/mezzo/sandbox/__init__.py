"""Isolated code execution: bubblewrap sandboxes, the egress allowlist proxy, the run_code tool."""

from mezzo.sandbox.limits import SandboxUnavailable
from mezzo.sandbox.result import ExecResult
from mezzo.sandbox.runner import Sandbox, SandboxSetupError
from mezzo.sandbox.spec import Mount, SandboxSpec, SpecError

__all__ = [
    "ExecResult",
    "Mount",
    "Sandbox",
    "SandboxSetupError",
    "SandboxSpec",
    "SandboxUnavailable",
    "SpecError",
]
