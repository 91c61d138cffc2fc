"""Stored responses: the response object and the transcript a follow-up continues, owned by
one tenant and invisible to every other.

A response with `store: true` is written to the store's KV under `gateway/response/{id}` with
its tenant, workspace, the response object and its transcript as Responses input items (the
instructions excluded, as OpenAI does: they do not carry over), so `previous_response_id` works
from any process sharing the store and after a restart. Each process also keeps the most recent
ones in memory for `MEMORY_TTL_S`, so a tool loop does not read the store every step; a
deletion takes effect at once in the process that deleted it and within that time elsewhere.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import TypeAdapter

from mezzo import keys
from mezzo.providers.base import Message
from mezzo.providers.openai_wire.items import (
    Input,
    responses_items,
    transcript,
)
from mezzo.store.base import Store

MEMORY_TTL_S = 60.0
_ITEMS = TypeAdapter(Input)
_PREFIXES = {"message": "msg", "function_call": "fc", "function_call_output": "fco"}


@dataclass(frozen=True, slots=True)
class Conversation:
    """A finished response: who owns it and the transcript a follow-up continues."""

    tenant: str
    workspace: str
    response: dict[str, Any]
    messages: tuple[Message, ...]

    @property
    def id(self) -> str:
        return str(self.response["id"])


@dataclass(frozen=True, slots=True)
class Page:
    data: list[dict[str, Any]]
    has_more: bool

    def body(self) -> dict[str, Any]:
        return {
            "object": "list",
            "data": self.data,
            "first_id": self.data[0]["id"] if self.data else None,
            "last_id": self.data[-1]["id"] if self.data else None,
            "has_more": self.has_more,
        }


class StoredResponses:
    def __init__(self, store: Store, recent: int = 512) -> None:
        self.store = store
        self._recent: OrderedDict[str, tuple[Conversation, float]] = OrderedDict()
        self._recent_max = recent

    def remember(self, conversation: Conversation) -> None:
        """Hold it in memory at once (before the store write lands)."""
        self._recent[conversation.id] = (conversation, time.monotonic())
        self._recent.move_to_end(conversation.id)
        while len(self._recent) > self._recent_max:
            self._recent.popitem(last=False)

    async def save(self, conversation: Conversation) -> None:
        self.remember(conversation)
        await self.store.kv_put(
            keys.gateway_response(conversation.id),
            {
                "tenant": conversation.tenant,
                "workspace": conversation.workspace,
                "response": conversation.response,
                "items": responses_items(conversation.messages),
            },
        )

    async def get(self, tenant: str, response_id: str) -> Conversation | None:
        """The tenant's stored response; None when there is none or it is another's."""
        cached = self._recent.get(response_id)
        if cached is not None and time.monotonic() - cached[1] < MEMORY_TTL_S:
            found = cached[0]
        else:
            value = await self.store.kv_get(keys.gateway_response(response_id))
            if value is None:
                self._recent.pop(response_id, None)
                return None
            found = Conversation(
                value["tenant"],
                value["workspace"],
                value["response"],
                tuple(transcript(_ITEMS.validate_python(value["items"]))),
            )
            self.remember(found)
        return found if found.tenant == tenant else None

    async def delete(self, tenant: str, response_id: str) -> bool:
        if await self.get(tenant, response_id) is None:
            return False
        self._recent.pop(response_id, None)
        return await self.store.kv_delete(keys.gateway_response(response_id))

    async def input_items(
        self,
        tenant: str,
        response_id: str,
        *,
        order: Literal["asc", "desc"] = "desc",
        after: str | None = None,
        before: str | None = None,
        limit: int = 20,
    ) -> Page | None:
        """The items the response answered (earlier turns included), with ids, a page."""
        found = await self.get(tenant, response_id)
        if found is None:
            return None
        items = input_items(found)
        if order == "desc":
            items.reverse()
        ids = [item["id"] for item in items]
        start = ids.index(after) + 1 if after in ids else 0
        end = ids.index(before) if before in ids else len(items)
        window = items[start:end]
        return Page(window[:limit], len(window) > limit)


def input_items(conversation: Conversation) -> list[dict[str, Any]]:
    """The transcript before the response's own output, as OpenAI lists input items."""
    items = responses_items(conversation.messages)
    items = items[: len(items) - len(conversation.response.get("output") or ())]
    suffix = conversation.id.removeprefix("resp_")
    listed = []
    for index, item in enumerate(items):
        kind = item["type"]
        entry = {"id": f"{_PREFIXES[kind]}_{suffix}_{index}", **item, "status": "completed"}
        if kind == "message":
            part = "output_text" if item["role"] == "assistant" else "input_text"
            entry["content"] = [{"type": part, "text": item["content"]}]
            if part == "output_text":
                entry["content"][0]["annotations"] = []
        listed.append(entry)
    return listed
