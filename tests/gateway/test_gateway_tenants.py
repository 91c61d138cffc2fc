"""Gateway responses belong to their tenant on every path (issue 19, item 1): another tenant's
key finds nothing — in flight or stored, over HTTP and WebSocket, to read, cancel, delete, list
or continue."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from gateway_support import gateway_settings
from openai import OpenAI

from core_support import ServerThread
from mezzo.server.auth import create_key
from mezzo.stub.server import StubServer


@pytest.fixture
def two_tenants(tmp_path: Path, stub: StubServer) -> Iterator[tuple[ServerThread, OpenAI, OpenAI]]:
    with ServerThread(gateway_settings(tmp_path / "data", stub), workers=False) as server:
        keys = [server.call(create_key(server.mezzo.store, name)) for name in ("alpha", "beta")]
        clients = [OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0) for key in keys]
        yield server, clients[0], clients[1]
        for client in clients:
            client.close()


def refused_everywhere(intruder: OpenAI, response_id: str) -> None:
    with pytest.raises(openai.NotFoundError):
        intruder.responses.retrieve(response_id)
    with pytest.raises(openai.NotFoundError):
        intruder.responses.cancel(response_id)
    with pytest.raises(openai.NotFoundError):
        intruder.responses.delete(response_id)
    with pytest.raises(openai.NotFoundError):
        intruder.responses.input_items.list(response_id)
    with pytest.raises(openai.BadRequestError) as continued:
        intruder.responses.create(
            model="stub-model", previous_response_id=response_id, input="and?"
        )
    assert continued.value.code == "previous_response_not_found"
    with pytest.raises(openai.BadRequestError):
        intruder.responses.input_tokens.count(
            model="stub-model", previous_response_id=response_id, input="x"
        )


async def intrude_over_websocket(intruder_key: str, url: str, response_id: str) -> str:
    sdk = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=intruder_key, max_retries=0)
    async with sdk.responses.connect() as connection:
        await connection.response.create(
            model="stub-model", previous_response_id=response_id, input="steal"
        )
        async for event in connection:
            await sdk.close()
            return event.type if event.type != "error" else event.error.code or ""
    return ""


def test_another_tenant_finds_nothing_in_flight_or_stored(
    two_tenants: tuple[ServerThread, OpenAI, OpenAI], stub: StubServer
) -> None:
    server, alpha, beta = two_tenants
    stub.configure(tokens_per_second=40, reply_tokens=120)
    ids: list[str] = []
    streaming = threading.Event()
    kinds: list[str] = []

    def consume() -> None:
        with alpha.responses.stream(model="stub-model", input="long") as stream:
            for event in stream:
                kinds.append(event.type)
                if event.type == "response.created":
                    ids.append(event.response.id)
                if event.type == "response.output_text.delta":
                    streaming.set()

    reader = threading.Thread(target=consume)
    reader.start()
    assert streaming.wait(10)
    assert alpha.responses.retrieve(ids[0]).status == "in_progress"
    refused_everywhere(beta, ids[0])
    reader.join(15)
    assert kinds[-1] == "response.completed"  # beta's cancel did not stop it
    stub.configure(tokens_per_second=None, reply_tokens=None)
    refused_everywhere(beta, ids[0])
    assert alpha.responses.retrieve(ids[0]).status == "completed"
    assert alpha.responses.input_items.list(ids[0]).data
    beta_key = str(beta.api_key)
    assert asyncio.run(intrude_over_websocket(beta_key, server.url, ids[0])) == (
        "previous_response_not_found"
    )
    follow = alpha.responses.create(model="stub-model", previous_response_id=ids[0], input="mine")
    assert follow.previous_response_id == ids[0]
