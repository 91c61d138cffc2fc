from mezzo.client.embedded import shutdown
from mezzo.client.events import AgentEvent
from mezzo.client.workspace import AgentWorkspace

__all__ = ["AgentEvent", "AgentWorkspace", "shutdown"]
