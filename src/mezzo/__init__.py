"""mezzo: the middle layer between applications and LLM APIs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from mezzo.client import AgentEvent, AgentWorkspace

__all__ = ["AgentEvent", "AgentWorkspace", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("AgentEvent", "AgentWorkspace"):
        import mezzo.client

        return getattr(mezzo.client, name)
    raise AttributeError(f"module 'mezzo' has no attribute {name!r}")
