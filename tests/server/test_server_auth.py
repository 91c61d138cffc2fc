"""API keys and tenant isolation on a real server."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import websockets

from core_support import ROOT, ServerThread, core_settings
from mezzo.server.auth import create_key, hash_key
from mezzo.stub.server import StubServer


@pytest.fixture
def keyed(tmp_path: Path, stub: StubServer) -> tuple[ServerThread, str, str]:
    with ServerThread(core_settings(tmp_path / "data", stub)) as server:
        alpha = server.call(create_key(server.mezzo.store, "alpha", "a"))
        beta = server.call(create_key(server.mezzo.store, "beta", "b"))
        yield server, alpha, beta


def test_requests_need_a_valid_key_once_keys_exist(keyed: tuple[ServerThread, str, str]) -> None:
    server, alpha, _ = keyed
    with httpx.Client(base_url=server.url, trust_env=False) as client:
        assert client.get("/v1/workspaces").status_code == 401
        assert (
            client.get("/v1/workspaces", headers={"authorization": "Bearer nope"}).status_code
            == 401
        )
        assert (
            client.get("/v1/workspaces", headers={"authorization": "Basic xyz"}).status_code == 401
        )
        ok = client.get("/v1/workspaces", headers={"authorization": f"Bearer {alpha}"})
        assert ok.status_code == 200 and ok.json() == []


def test_keys_are_stored_only_as_hashes(keyed: tuple[ServerThread, str, str]) -> None:
    server, alpha, _ = keyed
    path = Path(server.mezzo.settings.store_url.removeprefix("sqlite:///"))
    database = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
    assert alpha.encode() not in database
    assert hash_key(alpha).encode() in database


async def test_a_tenant_never_sees_another_tenants_workspace(
    keyed: tuple[ServerThread, str, str],
) -> None:
    server, alpha, beta = keyed
    a = {"authorization": f"Bearer {alpha}"}
    b = {"authorization": f"Bearer {beta}"}
    async with httpx.AsyncClient(base_url=server.url, trust_env=False) as client:
        assert (
            await client.post("/v1/workspaces", json={"id": "secret"}, headers=a)
        ).status_code == 201
        run = (
            await client.post(
                "/v1/workspaces/secret/runs", json={"input": "x\n/call t {}"}, headers=a
            )
        ).json()["run"]
        assert (await client.get("/v1/workspaces/secret", headers=b)).status_code == 404
        assert (await client.get("/v1/workspaces", headers=b)).json() == []
        assert (await client.get(f"/v1/runs/{run}", headers=b)).status_code == 404
        assert (
            await client.post("/v1/workspaces/secret/runs", json={"input": "y"}, headers=b)
        ).status_code == 404
        assert (await client.post(f"/v1/runs/{run}/cancel", headers=b)).status_code == 404
        assert (
            await client.post(f"/v1/runs/{run}/input", json={"text": "z"}, headers=b)
        ).status_code == 404
        results = {"results": [{"call_id": "c", "output": "o"}]}
        assert (
            await client.post(f"/v1/runs/{run}/tool_results", json=results, headers=b)
        ).status_code == 404
        assert (
            await client.post("/v1/workspaces/secret/throttle", json={"rate": 0.5}, headers=b)
        ).status_code == 404
        assert (await client.get("/v1/workspaces/secret/events", headers=b)).status_code == 404
        ws_url = server.url.replace("http", "ws") + "/v1/workspaces/secret/events"
        async with websockets.connect(ws_url, additional_headers=b) as socket:
            with pytest.raises(websockets.ConnectionClosedError) as info:
                await socket.recv()
        assert info.value.rcvd is not None and info.value.rcvd.code == 4404
        async with websockets.connect(f"{ws_url}?token={alpha}&types=run_queued") as socket:
            assert '"run_queued"' in await asyncio.wait_for(socket.recv(), 10)
        # Ids are each tenant's own: the same id is a workspace of B's own, as any new id is,
        # and shows nothing of A's.
        mine = await client.post("/v1/workspaces", json={"id": "secret"}, headers=b)
        assert mine.status_code == 201 and mine.json()["tenant"] == "beta"
        assert mine.json()["config"]["tools"] == [] and mine.json()["head_seq"] == 0
        assert (await client.get("/v1/workspaces/secret/events", headers=b)).json() == []
        assert (await client.get(f"/v1/runs/{run}", headers=b)).status_code == 404
        assert (await client.get(f"/v1/runs/{run}", headers=a)).status_code == 200


def test_binding_beyond_loopback_without_keys_is_refused(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mezzo.cli", "serve", "--host", "0.0.0.0", "--port", "1"],
        env={"MEZZO_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode != 0
    assert "refusing to bind 0.0.0.0 without API keys" in result.stderr
    assert "Traceback" not in result.stderr
