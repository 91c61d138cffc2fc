"""The OpenAI-compatible gateway's domain: what a request to `/v1/responses` or
`/v1/chat/completions` does, apart from HTTP and WebSocket framing (which `mezzo.server` keeps).

    gateway.py        `Gateway`: the one object the routes call
    callers.py        who is asking: the tenant's workspace (through `Mezzo`'s tenant checks)
    admission.py      the governor's admission, with the waits it asks for, bounded
    turns.py          one Responses turn: admit, stream, settle, store
    chat.py           one Chat Completions call
    backends.py       what the chosen backend honours: forwarded, enforced here, or refused
    stops.py          `stop` sequences enforced on a stream
    conversations.py  stored responses and responses in flight, scoped to their tenant
    writer.py         a Responses object and its stream events
    session.py        a WebSocket connection's state: its latest response, its upstream socket
    errors.py         governor and provider outcomes as OpenAI errors
"""

from mezzo.gateway.gateway import Gateway

__all__ = ["Gateway"]
