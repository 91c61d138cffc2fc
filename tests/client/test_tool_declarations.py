"""Tools declared the way people write them: the Responses shape, the Chat Completions shape (as
the `openai` SDK builds them), typed Python functions and `ToolDecl`s, through the SDK in both
modes and through the raw HTTP API."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest
from openai.types.responses import FunctionToolParam
from pydantic import BaseModel, ValidationError

from core_support import ServerThread
from mezzo import AgentEvent, AgentWorkspace
from mezzo.protocol import ToolDecl

TABLE_SCHEMA = {
    "type": "object",
    "properties": {"table": {"type": "string"}},
    "required": ["table"],
    "additionalProperties": False,
}
RESPONSES_TOOL = FunctionToolParam(
    type="function",
    name="lookup_schema",
    description="The schema of a database table.",
    parameters=TABLE_SCHEMA,
    strict=True,
)


class GetWeather(BaseModel):
    """The weather in a city."""

    city: str


CHAT_TOOL = openai.pydantic_function_tool(GetWeather, name="get_weather")


def count_rows(table: str, where: str = "") -> int:
    """Count the rows of a table."""
    return 0


DECLARED = ToolDecl(
    name="page_oncall",
    description="Page the on-call engineer.",
    parameters={"type": "object", "properties": {"why": {"type": "string"}}},
)

CALLS = [
    ("lookup_schema", {"table": "invoices"}),
    ("get_weather", {"city": "Lyon"}),
    ("count_rows", {"table": "invoices"}),
    ("page_oncall", {"why": "disk full"}),
]


async def test_every_shape_declares_a_client_tool_the_run_calls(mode: str) -> None:
    tools: list[Any] = [RESPONSES_TOOL, CHAT_TOOL, count_rows, DECLARED]
    workspace = await AgentWorkspace.create(id="tool-shapes", tools=tools)
    declared = {tool.name: tool for tool in workspace.info.config.tools}
    assert list(declared) == [name for name, _ in CALLS]
    assert all(tool.side == "client" for tool in declared.values())
    lookup = declared["lookup_schema"]
    assert (lookup.description, lookup.parameters, lookup.strict) == (
        "The schema of a database table.",
        TABLE_SCHEMA,
        True,
    )
    weather = declared["get_weather"]
    assert weather.description == "The weather in a city."
    assert weather.parameters["required"] == ["city"] and weather.strict is True
    assert declared["count_rows"].parameters["required"] == ["table"]
    assert declared["count_rows"].strict is None
    assert declared["page_oncall"].parameters == DECLARED.parameters

    await workspace.submit("\n".join(f"/call {name} {json.dumps(args)}" for name, args in CALLS))
    called = []
    async for event in workspace.subscribe(events=["tool_call", "completed", "failed"]):
        if type(event) is AgentEvent.ToolCall:
            assert event.side == "client"
            called.append((event.tool.name, event.tool.args))
            await workspace.submit_tool_result(event.call_id, f"done: {event.tool.name}")
            continue
        assert type(event) is AgentEvent.Completed, event
        assert event.output == "echo: done: page_oncall"
        break
    assert called == CALLS

    # The stored declarations are what the same request normalises to: creating it again opens it.
    again = await AgentWorkspace.create(id="tool-shapes", tools=tools)
    assert again.info.config.tools == workspace.info.config.tools
    await workspace.close()
    await again.close()


@pytest.mark.parametrize(
    ("tool", "error", "message"),
    [
        ({"type": "web_search"}, ValidationError, "only function tools"),
        ({"type": "function", "parameters": TABLE_SCHEMA}, ValidationError, "name"),
        ({"type": "function", "function": "lookup"}, ValidationError, "'function' must be"),
        ({"type": "function", "name": "a b"}, ValidationError, "pattern"),
        (42, TypeError, r"tools\[0\]: expected a function"),
        (lambda table: table, ValidationError, "name"),
    ],
    ids=["hosted-tool", "no-name", "function-not-object", "bad-name", "number", "lambda"],
)
async def test_the_sdk_refuses_what_is_no_tool_before_it_connects(
    tool: Any, error: type[Exception], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A URL where nothing listens: the declaration is refused before any connection.
    monkeypatch.setenv("MEZZO_URL", "http://127.0.0.1:9")
    with pytest.raises(error, match=message):
        await AgentWorkspace.create(id="bad-tools", tools=[tool])


def _create(server: ServerThread, name: str, tools: list[Any]) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/workspaces", json={"id": name, "tools": tools}, trust_env=False
    )


def test_the_http_api_takes_the_responses_and_chat_shapes(server: ServerThread) -> None:
    created = _create(server, "wire-shapes", [RESPONSES_TOOL, CHAT_TOOL])
    assert created.status_code == 201, created.text
    lookup, weather = created.json()["config"]["tools"]
    assert lookup == {
        "name": "lookup_schema",
        "description": "The schema of a database table.",
        "parameters": TABLE_SCHEMA,
        "side": "client",
        "strict": True,
    }
    assert weather["name"] == "get_weather" and weather["strict"] is True
    assert weather["parameters"] == CHAT_TOOL["function"]["parameters"]
    # Creating it again with the same declarations is idempotent, not a 409.
    assert _create(server, "wire-shapes", [RESPONSES_TOOL, CHAT_TOOL]).status_code == 200
    # The Responses API's optional fields at their neutral values are accepted, nulls too.
    neutral = {
        "type": "function",
        "name": "ping",
        "description": None,
        "parameters": None,
        "strict": None,
        "defer_loading": False,
    }
    created = _create(server, "neutral", [neutral])
    assert created.status_code == 201, created.text
    assert created.json()["config"]["tools"][0]["parameters"] == {
        "type": "object",
        "properties": {},
    }
    # mezzo's own shape still works, server-side tools included.
    own = [{"name": "ask", "parameters": TABLE_SCHEMA}, {"name": "run_code", "side": "server"}]
    assert _create(server, "own-shape", own).status_code == 201


@pytest.mark.parametrize(
    ("tool", "where", "message"),
    [
        ({"type": "web_search"}, "tools.0", "only function tools"),
        ({"type": "function", "description": "x"}, "tools.0", "name"),
        ({"type": "function", "function": ["x"]}, "tools.0", "'function' must be an object"),
        (
            {"type": "function", "name": "a", "function": {"name": "b"}},
            "tools.0",
            "both at the top level and under 'function'",
        ),
        ({"type": "function", "name": "a", "defer_loading": True}, "tools.0", "defer_loading"),
        ({"type": "function", "name": "a", "paramaters": {}}, "paramaters", "Extra inputs"),
        ({"type": "function", "name": "a", "parameters": []}, "parameters", "dictionary"),
    ],
    ids=["hosted", "no-name", "function-list", "both", "defer-loading", "typo", "params-list"],
)
def test_the_http_api_refuses_what_it_cannot_honour_with_a_clear_422(
    server: ServerThread, tool: dict[str, Any], where: str, message: str
) -> None:
    refused = _create(server, "refused", [tool])
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert where in error and message in error, error
    # Nothing was created.
    assert httpx.get(f"{server.url}/v1/workspaces/refused", trust_env=False).status_code == 404
