"""The governor inside the engine: budgets, alerts, suspend/top-up, fail, downgrade, provider
limits shared across worker processes, retry-after, and the breaker routing to the local model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from core_support import (
    ServeProcess,
    ServerThread,
    core_settings,
    events,
    free_port,
    process_env,
    wait_until,
)
from mezzo.config import RouteConfig
from mezzo.stub.server import StubServer


def usage_total(log: list[dict[str, Any]]) -> int:
    return sum(
        e["data"]["usage"]["input_tokens"] + e["data"]["usage"]["output_tokens"]
        for e in log
        if e["type"] == "model_result"
    )


def terminal_runs(url: str, ws: str) -> set[str]:
    return {e["run"] for e in events(url, ws, "completed,failed,cancelled")}


def test_budget_race_across_four_worker_processes_never_overshoots(
    tmp_path: Path, stub: StubServer, processes: list[ServeProcess]
) -> None:
    stub.configure(reply_tokens=40)
    env = process_env(tmp_path / "data", stub, MEZZO_MAX_OUTPUT_TOKENS="64", MEZZO_CONCURRENCY="8")
    port = free_port()
    api = ServeProcess(["serve", "--port", str(port), "--no-workers"], env, port).start()
    processes.append(api)
    for _ in range(4):
        processes.append(ServeProcess(["worker"], env).start())
    for round_ in range(3):
        ws, budget = f"race{round_}", 2500
        httpx.post(
            f"{api.url}/v1/workspaces",
            json={"id": ws, "budget_tokens": budget, "fallback_behavior": "fail"},
            trust_env=False,
        )
        runs = [
            httpx.post(
                f"{api.url}/v1/workspaces/{ws}/runs",
                json={"input": f"race {round_} {i}"},
                trust_env=False,
            ).json()["run"]
            for i in range(50)
        ]
        wait_until(
            lambda ws=ws, runs=runs: terminal_runs(api.url, ws) == set(runs), 90, f"round {round_}"
        )
        log = events(api.url, ws)
        spent = usage_total(log)
        ledger = httpx.get(f"{api.url}/v1/workspaces/{ws}", trust_env=False).json()["budget"]
        assert spent <= budget, f"reported usage {spent} overshot the budget {budget}"
        assert ledger["committed"] == spent and ledger["reserved"] == 0
        completed = [e for e in log if e["type"] == "completed"]
        failed = [e for e in log if e["type"] == "failed"]
        assert completed and failed, "the budget should let some runs through and stop others"
        assert all("token budget exhausted" in e["data"]["error"] for e in failed)


def test_two_worker_processes_share_one_tpm_limit(
    tmp_path: Path, stub: StubServer, processes: list[ServeProcess]
) -> None:
    tpm = 6000
    stub.configure(tpm=tpm, reply_tokens=30)
    env = process_env(
        tmp_path / "data",
        stub,
        MEZZO_MAX_OUTPUT_TOKENS="32",
        MEZZO_PROVIDER_LIMITS=f'{{"openai:stub-model": {{"tpm": {tpm}}}}}',
        MEZZO_PRIORITY_MAX_WAIT='{"high": "inf", "normal": "inf", "low": "inf"}',
    )
    port = free_port()
    api = ServeProcess(["serve", "--port", str(port), "--no-workers"], env, port).start()
    processes.append(api)
    processes.extend(ServeProcess(["worker"], env).start() for _ in range(2))
    httpx.post(f"{api.url}/v1/workspaces", json={"id": "tpm"}, trust_env=False)
    runs = [
        httpx.post(
            f"{api.url}/v1/workspaces/tpm/runs", json={"input": f"tpm {i}"}, trust_env=False
        ).json()["run"]
        for i in range(20)
    ]
    wait_until(lambda: terminal_runs(api.url, "tpm") == set(runs), 90, "all runs")
    log = events(api.url, "tpm")
    assert len([e for e in log if e["type"] == "completed"]) == 20
    stats = stub.stats()
    assert stats["rate_limited"] == 0, "the stub answered 429: the workers overran its TPM"
    assert stats["by_status"].get("429", 0) == 0
    assert any(e["type"] == "rate_limited" for e in log), "the shared limiter never made a run wait"


@pytest.fixture
def tight(tmp_path: Path, stub: StubServer) -> ServerThread:
    stub.configure(reply_tokens=30)
    settings = core_settings(tmp_path / "data", stub, max_output_tokens=40)
    with ServerThread(settings) as server:
        yield server


def test_alert_once_suspend_at_exhaustion_and_top_up_resumes_the_same_run(
    tight: ServerThread,
) -> None:
    url = tight.url
    httpx.post(
        f"{url}/v1/workspaces",
        json={"id": "b", "budget_tokens": 400, "alert_thresholds": [0.5, 0.9]},
        trust_env=False,
    )
    third = None
    for i in range(10):
        run = httpx.post(
            f"{url}/v1/workspaces/b/runs", json={"input": f"step {i}"}, trust_env=False
        ).json()["run"]

        def settled(run: str = run) -> bool:
            status = httpx.get(f"{url}/v1/runs/{run}", trust_env=False).json()["status"]
            return status in ("completed", "suspended", "failed")

        wait_until(settled, 20, "a run")
        if httpx.get(f"{url}/v1/runs/{run}", trust_env=False).json()["status"] == "suspended":
            third = run
            break
    assert third is not None, "the budget never ran out"
    log = events(url, "b")
    alerts = [e["data"]["threshold"] for e in log if e["type"] == "budget_alert"]
    assert alerts == [0.5, 0.9]
    assert [e["type"] for e in log if e["run"] == third][-2:] == ["budget_exhausted", "suspended"]
    assert usage_total(log) <= 400
    topped = httpx.post(f"{url}/v1/workspaces/b/budget", json={"add_tokens": 1000}, trust_env=False)
    assert topped.status_code == 200 and topped.json()["budget"]["budget_tokens"] == 1400
    wait_until(lambda: third in terminal_runs(url, "b"), 20, "the resumed run")
    after = events(url, "b")
    assert [e["type"] for e in after if e["run"] == third][-1] == "completed"
    assert any(e["type"] == "resumed" and e["run"] == third for e in after)
    assert [e["data"]["threshold"] for e in after if e["type"] == "budget_alert"] == [0.5, 0.9]
    # Nothing is suspended now: another top-up is refused and changes nothing.
    again = httpx.post(f"{url}/v1/workspaces/b/budget", json={"add_tokens": 5}, trust_env=False)
    assert again.status_code == 409
    assert (
        httpx.get(f"{url}/v1/workspaces/b", trust_env=False).json()["budget"]["budget_tokens"]
        == 1400
    )


def test_fail_behaviour_fails_the_run_with_a_clear_error(tight: ServerThread) -> None:
    url = tight.url
    httpx.post(
        f"{url}/v1/workspaces",
        json={"id": "f", "budget_tokens": 50, "fallback_behavior": "fail"},
        trust_env=False,
    )
    run = httpx.post(
        f"{url}/v1/workspaces/f/runs", json={"input": "too big for the budget"}, trust_env=False
    ).json()["run"]
    wait_until(lambda: run in terminal_runs(url, "f"), 20, "the run")
    body = httpx.get(f"{url}/v1/runs/{run}", trust_env=False).json()
    assert body["status"] == "failed" and "token budget exhausted" in body["error"]
    assert not any(e["type"] == "model_call" for e in events(url, "f"))


def test_429_with_retry_after_holds_every_request_to_that_key(
    tight: ServerThread, stub: StubServer
) -> None:
    url = tight.url
    stub.configure(fail_429=1.0, fault_retry_after_s=1.5)
    httpx.post(f"{url}/v1/workspaces", json={"id": "r"}, trust_env=False)
    runs = [
        httpx.post(
            f"{url}/v1/workspaces/r/runs", json={"input": f"hi {i}"}, trust_env=False
        ).json()["run"]
        for i in range(3)
    ]
    wait_until(lambda: any(e["type"] == "rate_limited" for e in events(url, "r")), 20, "a 429")
    stub.configure(fail_429=0.0)
    wait_until(lambda: terminal_runs(url, "r") == set(runs), 30, "all runs")
    log = stub.stats()["log"]
    first_429 = min(entry["t"] for entry in log if entry.get("status") == 429)
    later = [entry["t"] for entry in log if entry["t"] > first_429 and entry.get("status") != 429]
    assert later and min(later) >= first_429 + 1.5 - 0.05, (
        "a request went out before retry-after passed"
    )
    assert all(e["type"] != "failed" for e in events(url, "r"))


def test_breaker_opens_on_503s_and_low_priority_runs_move_to_the_local_model(
    tmp_path: Path, stub: StubServer
) -> None:
    pytest.importorskip("llama_cpp")
    stub.configure(fail_503=1.0)
    routes = {"default": RouteConfig(primary="openai:stub-model", fallback="local:smollm2")}
    settings = core_settings(tmp_path / "data", stub, routes=routes, max_output_tokens=24)
    with ServerThread(settings) as server:
        url = server.url
        httpx.post(f"{url}/v1/workspaces", json={"id": "cb", "priority": "low"}, trust_env=False)
        run = httpx.post(
            f"{url}/v1/workspaces/cb/runs", json={"input": "Say hello."}, trust_env=False
        ).json()["run"]
        wait_until(lambda: run in terminal_runs(url, "cb"), 120, "the run")
        log = events(url, "cb")
        routed = [e["data"] for e in log if e["type"] == "routed"]
        assert (
            routed
            and routed[0]["reason"] == "breaker_open"
            and routed[0]["to_route"] == "local:smollm2"
        )
        assert sum(1 for e in log if e["type"] == "retry") >= 5
        final = [e for e in log if e["type"] == "model_result"][-1]["data"]
        assert final["model"] != "stub-model" and final["text"]
        assert [e["type"] for e in log][-1] == "completed"


def test_downgrade_moves_an_exhausted_run_to_the_fallback(tmp_path: Path, stub: StubServer) -> None:
    pytest.importorskip("llama_cpp")
    routes = {"default": RouteConfig(primary="openai:stub-model", fallback="local:smollm2")}
    settings = core_settings(tmp_path / "data", stub, routes=routes, max_output_tokens=24)
    with ServerThread(settings) as server:
        url = server.url
        httpx.post(
            f"{url}/v1/workspaces",
            json={"id": "dg", "budget_tokens": 40, "fallback_behavior": "downgrade"},
            trust_env=False,
        )
        run = httpx.post(
            f"{url}/v1/workspaces/dg/runs", json={"input": "Say hi."}, trust_env=False
        ).json()["run"]
        wait_until(lambda: run in terminal_runs(url, "dg"), 120, "the run")
        log = events(url, "dg")
        types = [e["type"] for e in log]
        assert types[:2] == ["run_queued", "run_started"]
        assert "budget_exhausted" in types and types[-1] == "completed"
        routed = [e["data"] for e in log if e["type"] == "routed"]
        assert routed[0]["reason"] == "budget_downgrade"
        assert [e["data"]["provider"] for e in log if e["type"] == "model_call"] == ["local"]
        assert (
            httpx.get(f"{url}/v1/workspaces/dg", trust_env=False).json()["budget"]["committed"] == 0
        )


def test_fallback_to_a_second_openai_compatible_server(tmp_path: Path, stub: StubServer) -> None:
    """A real-OpenAI-style primary with an Ollama/vLLM-style server as the fallback route."""
    from mezzo.stub.config import StubConfig

    stub.configure(fail_503=1.0)
    with StubServer(StubConfig(models=["llama3"])) as local_server:
        routes = {"default": RouteConfig(primary="openai:stub-model", fallback="compat:llama3")}
        settings = core_settings(
            tmp_path / "data", stub, routes=routes, compat_base_url=local_server.base_url
        )
        with ServerThread(settings) as server:
            url = server.url
            httpx.post(f"{url}/v1/workspaces", json={"id": "c", "priority": "low"}, trust_env=False)
            run = httpx.post(
                f"{url}/v1/workspaces/c/runs", json={"input": "hi"}, trust_env=False
            ).json()["run"]
            wait_until(lambda: run in terminal_runs(url, "c"), 60, "the run")
            log = events(url, "c")
            assert [e["data"]["to_route"] for e in log if e["type"] == "routed"] == [
                "compat:llama3"
            ]
            assert log[-1]["type"] == "completed" and log[-1]["data"]["output"] == "echo: hi"
        assert local_server.stats()["completed"] == 1


def test_throttle_scales_the_workspace_share_of_the_provider_tpm(
    tmp_path: Path, stub: StubServer
) -> None:
    from mezzo.config import ProviderLimits

    stub.configure(reply_tokens=10)
    settings = core_settings(
        tmp_path / "data",
        stub,
        max_output_tokens=16,
        provider_limits={"openai:stub-model": ProviderLimits(tpm=60_000)},
    )
    with ServerThread(settings) as server:
        url = server.url
        for ws in ("full", "slow"):
            httpx.post(f"{url}/v1/workspaces", json={"id": ws}, trust_env=False)
        throttled = httpx.post(
            f"{url}/v1/workspaces/slow/throttle", json={"rate": 0.02}, trust_env=False
        )
        assert throttled.status_code == 200 and throttled.json()["throttle_rate"] == 0.02
        runs = {
            ws: [
                httpx.post(
                    f"{url}/v1/workspaces/{ws}/runs", json={"input": f"t{i}"}, trust_env=False
                ).json()["run"]
                for i in range(6)
            ]
            for ws in ("full", "slow")
        }
        wait_until(
            lambda: terminal_runs(url, "full") == set(runs["full"]), 30, "the unthrottled runs"
        )
        slow = events(url, "slow")
        # 2 % of 60k TPM is 1,200 tokens/min (200 in a burst): the throttled workspace waits.
        assert any(e["type"] == "rate_limited" and e["data"]["key"] == "throttle" for e in slow)
        assert not any(e["type"] == "rate_limited" for e in events(url, "full"))
        assert len([e for e in slow if e["type"] == "completed"]) < 6
