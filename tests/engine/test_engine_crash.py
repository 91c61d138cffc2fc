"""Crashes: kill -9 of a worker mid-run, and restarts of `mezzo serve` with work queued."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from core_support import ServeProcess, events, free_port, process_env, wait_until
from mezzo.stub.server import StubServer


def assert_no_doubled_effects(log: list[dict[str, Any]]) -> None:
    results = Counter((e["run"], e["data"]["step"]) for e in log if e["type"] == "model_result")
    assert all(n == 1 for n in results.values()), f"model_result doubled: {results}"
    tools = Counter((e["run"], e["data"]["call_id"]) for e in log if e["type"] == "tool_result")
    assert all(n == 1 for n in tools.values()), f"tool_result doubled: {tools}"
    assert [e["seq"] for e in log] == list(range(1, len(log) + 1))


def test_kill_9_of_a_worker_mid_run_another_finishes_without_doubling(
    tmp_path: Path, stub: StubServer, processes: list[ServeProcess]
) -> None:
    stub.configure(tokens_per_second=40, reply_tokens=40)
    empty = tmp_path / "infra"
    empty.mkdir()
    env = process_env(tmp_path / "data", stub)
    port = free_port()
    api = ServeProcess(["serve", "--port", str(port), "--no-workers"], env, port).start()
    processes.append(api)
    first = ServeProcess(["worker"], env).start()
    processes.append(first)
    url = api.url
    httpx.post(
        f"{url}/v1/workspaces",
        json={"id": "w", "tools": [{"name": "scan_infrastructure", "side": "server"}]},
        trust_env=False,
    )
    task = f'scan it\n/call scan_infrastructure {{"target": "{empty}", "depth": "quick"}}'
    runs = [
        httpx.post(f"{url}/v1/workspaces/w/runs", json={"input": task}, trust_env=False).json()[
            "run"
        ]
        for _ in range(4)
    ]
    # Kill the worker while second model calls are streaming (after tool results exist).
    wait_until(
        lambda: (
            sum(1 for e in events(url, "w") if e["type"] == "model_call" and e["data"]["step"] == 2)
            >= 2
        ),
        30,
        "second model calls",
    )
    first.kill()
    second = ServeProcess(["worker"], env).start()
    processes.append(second)
    wait_until(
        lambda: {e["run"] for e in events(url, "w") if e["type"] == "completed"} == set(runs),
        60,
        "all runs to complete on the second worker",
    )
    log = events(url, "w")
    assert_no_doubled_effects(log)
    repeated = Counter((e["run"], e["data"]["step"]) for e in log if e["type"] == "model_call")
    assert any(n > 1 for n in repeated.values()), "no model call was interrupted by the kill"
    assert second.terminate() == 0


def test_serve_restart_keeps_every_accepted_run(
    tmp_path: Path, stub: StubServer, processes: list[ServeProcess]
) -> None:
    stub.configure(tokens_per_second=20, reply_tokens=20)
    env = process_env(tmp_path / "data", stub)
    port = free_port()
    serve = ServeProcess(["serve", "--port", str(port)], env, port).start()
    processes.append(serve)
    url = serve.url
    httpx.post(f"{url}/v1/workspaces", json={"id": "w"}, trust_env=False)
    accepted = []
    for i in range(12):
        response = httpx.post(
            f"{url}/v1/workspaces/w/runs", json={"input": f"job {i}"}, trust_env=False
        )
        assert response.status_code == 202
        accepted.append(response.json()["run"])
    serve.kill()
    restarted = ServeProcess(["serve", "--port", str(port)], env, port).start()
    processes.append(restarted)
    wait_until(
        lambda: {e["run"] for e in events(url, "w") if e["type"] == "completed"} == set(accepted),
        60,
        "every accepted run to complete after the restart",
    )
    log = events(url, "w")
    assert_no_doubled_effects(log)
    outputs = {e["run"]: e["data"]["output"] for e in log if e["type"] == "completed"}
    assert all(outputs[run].startswith("echo: job") for run in accepted)
    assert restarted.terminate() == 0, restarted.log.read_text()


def test_sigterm_lets_in_flight_steps_finish(
    tmp_path: Path, stub: StubServer, processes: list[ServeProcess]
) -> None:
    stub.configure(tokens_per_second=20, reply_tokens=20)
    env = process_env(tmp_path / "data", stub)
    port = free_port()
    serve = ServeProcess(["serve", "--port", str(port)], env, port).start()
    processes.append(serve)
    url = serve.url
    httpx.post(f"{url}/v1/workspaces", json={"id": "w"}, trust_env=False)
    run = httpx.post(f"{url}/v1/workspaces/w/runs", json={"input": "slow"}, trust_env=False).json()[
        "run"
    ]
    wait_until(
        lambda: any(e["type"] == "model_call" for e in events(url, "w")), 20, "the model call"
    )
    assert serve.terminate() == 0
    # The step that was streaming finished before the process left.
    restarted = ServeProcess(["serve", "--port", str(port), "--no-workers"], env, port).start()
    processes.append(restarted)
    log = events(url, "w")
    assert [e["type"] for e in log if e["run"] == run][-1] == "completed", json.dumps(log)[:2000]
