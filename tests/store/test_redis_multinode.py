"""Many nodes on one Redis: two `mezzo serve --no-workers` API processes and three `mezzo worker`
processes. Runs go in through node A; a WebSocket on node B sees every event of every run,
once, in seq order."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import redis
import websockets
from redis_process import RedisProcess

from core_support import ServeProcess, free_port, process_env
from mezzo import keys
from mezzo.stub.server import StubServer

RUNS = 24


def _queue_state(port: int) -> dict[str, Any]:
    client = redis.Redis(port=port, decode_responses=True)
    tag = "mezzo:{q:runs}"
    state: dict[str, Any] = {"jobs": client.hgetall(f"{tag}:jobs")}
    for part in ("ready", "delayed", "leased", "dead"):
        state[part] = client.zrange(f"{tag}:{part}", 0, -1, withscores=True)
    state["time"] = client.time()
    return state


def assert_each_step_once(log: list[dict[str, Any]]) -> None:
    results = Counter((e["run"], e["data"]["step"]) for e in log if e["type"] == "model_result")
    assert all(n == 1 for n in results.values()), f"model_result doubled: {results}"
    assert [e["seq"] for e in log] == list(range(1, len(log) + 1))


async def test_submit_through_one_node_stream_from_the_other(
    tmp_path: Path, stub: StubServer, processes: list[ServeProcess]
) -> None:
    stub.configure(tokens_per_second=200, reply_tokens=10)
    with RedisProcess(tmp_path / "redis") as redis_server:
        env = process_env(tmp_path / "data", stub)
        store = ["--store", redis_server.url]
        nodes = []
        for _ in range(2):
            port = free_port()
            node = ServeProcess(["serve", "--port", str(port), "--no-workers", *store], env, port)
            processes.append(node.start())
            nodes.append(node)
        for _ in range(3):
            processes.append(ServeProcess(["worker", *store], env).start())
        a, b = nodes
        try:
            async with httpx.AsyncClient(base_url=a.url, trust_env=False, timeout=30) as api:
                created = await api.post("/v1/workspaces", json={"id": "w"})
                assert created.status_code == 201, created.text
                ws_url = f"ws://127.0.0.1:{b.port}/v1/workspaces/w/events?after=0"
                async with websockets.connect(ws_url) as socket:
                    accepted = []
                    for i in range(RUNS):
                        response = await api.post(
                            "/v1/workspaces/w/runs", json={"input": f"job {i}"}
                        )
                        assert response.status_code == 202, response.text
                        accepted.append(response.json()["run"])
                    streamed: list[dict[str, Any]] = []
                    completed: set[str] = set()
                    while completed != set(accepted):
                        try:
                            raw = await asyncio.wait_for(socket.recv(), 60)
                        except TimeoutError:
                            page = await api.get("/v1/workspaces/w/events", params={"limit": 10000})
                            done = sum(1 for e in page.json() if e["type"] == "completed")
                            ended = {e["run"] for e in page.json() if e["type"] == "completed"}
                            stuck = [
                                (e["seq"], e["type"], e["ts"], e["data"])
                                for e in page.json()
                                if e["run"] not in ended
                            ]
                            raise AssertionError(
                                f"stream on B stalled after {len(streamed)} events; node A's "
                                f"log has {len(page.json())}, {done} of {RUNS} runs completed; "
                                f"queue: {_queue_state(redis_server.port)}; unfinished: {stuck}"
                            ) from None
                        event = json.loads(raw)
                        if event["seq"] is None:
                            continue  # live-only deltas
                        streamed.append(event)
                        if event["type"] == "completed":
                            completed.add(event["run"])
                log = (await api.get("/v1/workspaces/w/events", params={"limit": 10000})).json()
            # The nodes share Redis, not the SQLite file their common data dir would hold.
            stream = f"mezzo:{{w:{keys.workspace_key('local', 'w')}}}:log"
            assert redis.Redis(port=redis_server.port).xlen(stream) == len(log)
            assert not (tmp_path / "data" / "mezzo.sqlite3").exists()
        finally:
            for process in processes:
                process.kill()
    assert [e["seq"] for e in streamed] == [e["seq"] for e in log]
    assert streamed == log
    assert_each_step_once(log)
    outputs = {e["run"]: e["data"]["output"] for e in log if e["type"] == "completed"}
    assert sorted(outputs) == sorted(accepted)
    assert all(output.startswith("echo: job") for output in outputs.values())
