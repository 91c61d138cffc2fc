"""A model (the stub LLM over real HTTP) asks for a slice through the tools registry and gets
exactly it back. The engine wiring of file tools into runs belongs to the core; this drives the
same pieces (provider, registry, bound file tools) in a hand-written tool loop."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from contextlib import aclosing
from pathlib import Path

import pytest
from files_seqgen import fasta_text, random_records, write

from mezzo.files import FileStore, summary_for_context
from mezzo.files.tools import bind_file_tools
from mezzo.providers.base import Message, ModelRequest, ModelResponse, ToolSpec
from mezzo.providers.openai import OpenAIProvider
from mezzo.stub.server import StubServer
from mezzo.tools.registry import ToolRegistry


@pytest.fixture(scope="module")
def stub() -> Iterator[StubServer]:
    with StubServer() as server:
        yield server


async def final_response(provider: OpenAIProvider, request: ModelRequest) -> ModelResponse:
    async with aclosing(provider.stream(request)) as chunks:
        async for chunk in chunks:
            if isinstance(chunk, ModelResponse):
                return chunk
    raise AssertionError("no ModelResponse")


async def test_agent_asks_for_a_slice_and_gets_exactly_it(
    tmp_path: Path, store: FileStore, attach, stub: StubServer
) -> None:
    records = random_records(random.Random(31), 30, max_len=30_000)
    info = await attach(
        write(tmp_path / "asm.fa.gz", fasta_text(records, random.Random(3)), "bgzf")
    )
    rec = max(records, key=lambda r: len(r.seq))
    registry = ToolRegistry()
    for tool in bind_file_tools(store, "ws1", max_tokens=4000):
        registry.register(tool)
    specs = tuple(
        ToolSpec(t.decl.name, t.decl.description, t.decl.parameters)
        for t in map(registry.get, registry.names())
    )
    args = {"file_id": info.id, "region": f"{rec.name}:1001-1600"}
    task = f"Show me that slice.\n/call fetch_sequence {json.dumps(args)}"
    history = [Message("system", summary_for_context(info)), Message("user", task)]
    provider = OpenAIProvider("chat", base_url=stub.base_url, api_key="test-key")
    try:
        first = await final_response(provider, ModelRequest("stub-model", tuple(history), specs))
        (call,) = first.tool_calls
        assert call.name == "fetch_sequence"
        output = await registry.get(call.name).call(call.arguments)
        history += [
            Message("assistant", tool_calls=(call,)),
            Message("tool", output, call_id=call.call_id),
        ]
        second = await final_response(provider, ModelRequest("stub-model", tuple(history), specs))
    finally:
        await provider.aclose()
    assert second.text == f"echo: >{rec.name}:1001-1600 (600 bases)\n{rec.seq[1000:1600]}"
