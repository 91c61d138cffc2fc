"""The OpenAI wire formats — Responses and Chat Completions — and mezzo's neutral transcript.

One converter, both directions, both APIs, used by the gateway (a client's request in, the
answer out) and by the OpenAI provider (a request out to an upstream, its answer in):

    items.py     transcript items and tools: pydantic models of the wire shapes a client sends,
                 and `Message`s back to wire items (Responses input items, Chat messages)
    requests.py  request bodies (pydantic, extra fields allowed as the API allows them) to a
                 neutral `ModelRequest`; a `ModelRequest` to an upstream's request parameters,
                 with the fields mezzo does not interpret forwarded to a backend of the same API
    answers.py   an upstream's answer to a `ModelResponse`; a `ModelResponse` to a Chat
                 Completions object or its chunks, and Responses output items
    errors.py    a pydantic validation error as OpenAI words a refusal (`param`, `code`)
"""
