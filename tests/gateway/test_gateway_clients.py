"""The gateway through the clients people use, against the stub: openai-agents (Responses over
HTTP and WebSocket, Chat Completions), langchain-openai and pydantic-ai (Chat Completions and
Responses), with tools, structured output and streaming; the ledger equals the usage the
upstream reported."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from gateway_support import ledger, upstream_params
from openai import AsyncOpenAI
from pydantic import BaseModel

from core_support import ServerThread
from mezzo.stub.server import StubServer

agents = pytest.importorskip("agents", reason="openai-agents is in the test extra")
langchain_openai = pytest.importorskip("langchain_openai", reason="in the test extra")

LOOP = '/call read {"path": "a.txt"}\n/call read {"path": "b.txt"}'


class City(BaseModel):
    name: str
    population: int


@pytest.fixture(autouse=True)
def no_tracing() -> Iterator[None]:
    agents.set_tracing_disabled(True)
    yield


def upstream_tokens(stub: StubServer) -> int:
    return sum(e["input_tokens"] + e["output_tokens"] for e in stub.stats()["log"])


@pytest.mark.parametrize("transport", ["responses", "websocket", "chat"])
async def test_openai_agents_tool_loop_and_structured_output(
    gw_server: ServerThread, workspace: str, stub: StubServer, transport: str
) -> None:
    from agents.models.openai_provider import OpenAIProvider

    client = AsyncOpenAI(
        base_url=f"{gw_server.url}/v1",
        api_key="x",
        max_retries=0,
        default_headers={"X-Mezzo-Workspace": workspace},
    )
    provider = OpenAIProvider(
        openai_client=client,
        use_responses=transport != "chat",
        use_responses_websocket=transport == "websocket",
    )
    config = agents.RunConfig(model_provider=provider, tracing_disabled=True)
    paths: list[str] = []

    @agents.function_tool
    def read(path: str) -> str:
        """Read a file."""
        paths.append(path)
        return f"contents of {path}"

    looping = agents.Agent(name="reader", instructions="Read.", model="stub-model", tools=[read])
    result = await agents.Runner.run(looping, LOOP, run_config=config)
    assert paths == ["a.txt", "b.txt"]
    assert result.final_output == "echo: contents of b.txt"
    typed = agents.Agent(name="typed", model="stub-model", output_type=City)
    city = await agents.Runner.run(typed, "a city", run_config=config)
    assert city.final_output == City(name="stub", population=0)
    sent = upstream_params(stub)
    # Strict tool schemas and the output schema reached the upstream as the agent sent them.
    first_tool = sent[0]["tools"][0]
    assert first_tool.get("strict", first_tool.get("function", {}).get("strict")) is True
    assert "text" in sent[-1] or "response_format" in sent[-1]
    await client.close()
    expected = upstream_tokens(stub)
    for _ in range(100):  # a WebSocket turn settles while the client runs its tool
        if ledger(gw_server, workspace)["committed"] == expected:
            break
        await asyncio.sleep(0.05)
    assert ledger(gw_server, workspace) == {
        "budget_tokens": 1_000_000,
        "committed": expected,
        "reserved": 0,
    }


@pytest.mark.parametrize("responses_api", [False, True])
def test_langchain_openai(
    gw_server: ServerThread, workspace: str, stub: StubServer, responses_api: bool
) -> None:
    from langchain_core.tools import tool

    llm = langchain_openai.ChatOpenAI(
        model="stub-model",
        base_url=f"{gw_server.url}/v1",
        api_key="x",
        max_retries=0,
        use_responses_api=responses_api,
        default_headers={"X-Mezzo-Workspace": workspace},
    )

    @tool
    def read(path: str) -> str:
        """Read a file."""
        return path

    def text(message: Any) -> str:
        content = message.content
        if isinstance(content, list):
            return "".join(part.get("text", "") for part in content if isinstance(part, dict))
        return str(content)

    assert text(llm.invoke("hello")) == "echo: hello"
    assert "".join(text(chunk) for chunk in llm.stream("streamed")) == "echo: streamed"
    assert llm.with_structured_output(City).invoke("a city") == City(name="stub", population=0)
    calls = llm.bind_tools([read], strict=True).invoke('/call read {"path": "x"}').tool_calls
    assert [(c["name"], c["args"]) for c in calls] == [("read", {"path": "x"})]
    if not responses_api:  # a health check's max_tokens=1 (the Responses API's minimum is 16)
        assert text(llm.bind(max_tokens=1).invoke("ping pong")) == "echo"
    assert ledger(gw_server, workspace)["committed"] == upstream_tokens(stub)


@pytest.mark.parametrize("api", ["chat", "responses"])
async def test_pydantic_ai_tool_loop_and_structured_output(
    gw_server: ServerThread, workspace: str, stub: StubServer, api: str
) -> None:
    pydantic_ai = pytest.importorskip("pydantic_ai", reason="pydantic-ai-slim is in the test extra")
    from pydantic_ai.models.openai import OpenAIChatModel, OpenAIResponsesModel
    from pydantic_ai.providers.openai import OpenAIProvider

    client = AsyncOpenAI(
        base_url=f"{gw_server.url}/v1",
        api_key="x",
        max_retries=0,
        default_headers={"X-Mezzo-Workspace": workspace},
    )
    provider = OpenAIProvider(openai_client=client)
    model_class = OpenAIChatModel if api == "chat" else OpenAIResponsesModel
    model = model_class("stub-model", provider=provider)
    paths: list[str] = []
    looping = pydantic_ai.Agent(model, instructions="Read.")

    @looping.tool_plain
    def read(path: str) -> str:
        """Read a file."""
        paths.append(path)
        return f"contents of {path}"

    result = await looping.run(LOOP)
    assert paths == ["a.txt", "b.txt"]
    assert result.output == "echo: contents of b.txt"
    typed = pydantic_ai.Agent(model, output_type=pydantic_ai.NativeOutput(City))
    city = await typed.run("a city")
    assert city.output == City(name="stub", population=0)
    sent = upstream_params(stub)
    assert "text" in sent[-1] or "response_format" in sent[-1]  # the schema reached upstream
    await client.close()
    assert ledger(gw_server, workspace)["committed"] == upstream_tokens(stub)
