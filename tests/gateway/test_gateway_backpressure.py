"""A WebSocket client that stops reading: bounded buffers, a close, and a partial charge."""

from __future__ import annotations

import asyncio
import json
import socket as socket_module
from collections.abc import Callable
from pathlib import Path

import pytest
import websockets
from gateway_support import gateway_settings, ledger, make_workspace

from core_support import ServerThread
from mezzo.server import gateway_ws
from mezzo.stub.config import StubConfig
from mezzo.stub.server import StubServer


async def until(
    server: ServerThread, workspace: str, condition: Callable[[dict[str, int]], bool]
) -> dict[str, int]:
    for _ in range(600):
        budget = await asyncio.to_thread(ledger, server, workspace)
        if condition(budget):
            break
        await asyncio.sleep(0.05)
    return budget


async def test_a_client_that_never_reads_is_closed_and_charged_for_what_it_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gateway_ws, "SEND_TIMEOUT_S", 0.5)
    reply = 40_000
    with (
        StubServer(StubConfig(reply_tokens=reply)) as stub,
        ServerThread(
            gateway_settings(tmp_path / "data", stub, max_output_tokens=reply), workers=False
        ) as server,
    ):
        workspace = make_workspace(server)
        url = server.url.replace("http://", "ws://") + "/v1/responses"
        headers = {"X-Mezzo-Workspace": workspace}
        # A small receive buffer, so the bytes in flight fit in the kernel's buffers many times
        # over what the reply needs.
        raw = socket_module.socket()
        raw.setsockopt(socket_module.SOL_SOCKET, socket_module.SO_RCVBUF, 32 * 1024)
        raw.connect(("127.0.0.1", server.port))
        raw.setblocking(False)
        async with websockets.connect(
            url, additional_headers=headers, max_queue=1, sock=raw, compression=None
        ) as socket:
            await socket.send(
                json.dumps({"type": "response.create", "model": "stub-model", "input": "flood"})
            )
            # Read nothing: the server's sends block once the socket buffers are full.
            held = await until(server, workspace, lambda b: b["reserved"] > 0)
            assert held["reserved"] > 0
            budget = await until(server, workspace, lambda b: b["reserved"] == 0)
        assert budget["reserved"] == 0
        assert 0 < budget["committed"] < reply
        assert len(stub.stats()["log"]) == 1  # one upstream call, not retried
        # The server is still healthy: a new connection gets a full answer.
        stub.configure(reply_tokens=5)
        async with websockets.connect(url, additional_headers=headers) as socket:
            await socket.send(
                json.dumps({"type": "response.create", "model": "stub-model", "input": "ok"})
            )
            while (event := json.loads(await socket.recv()))["type"] != "response.completed":
                pass
        assert event["response"]["usage"]["output_tokens"] == 5
