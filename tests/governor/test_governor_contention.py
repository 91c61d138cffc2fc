"""Many calls sharing one budget, on both stores: runs and gateway requests wait for holds in
flight instead of being suspended, and only calls the unspent budget cannot fit are refused."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from core_support import ServerThread, core_settings, events, wait_until
from mezzo.config import Settings
from mezzo.stub.config import StubConfig
from mezzo.stub.server import StubServer
from store.redis_process import RedisProcess

RUNS = 40


@pytest.fixture(params=["sqlite", "redis"])
def settings(
    request: pytest.FixtureRequest, tmp_path: Path, stub: StubServer
) -> Iterator[Settings]:
    """Default output allowance (4,096): each call wants far more than these budgets hold."""
    stub.configure(reply_tokens=60)
    if request.param == "sqlite":
        yield core_settings(tmp_path / "data", stub)
        return
    with RedisProcess(tmp_path / "redis") as redis_server:
        yield core_settings(tmp_path / "data", stub, store=redis_server.url)


def create(url: str, workspace: str, budget: int, **config: Any) -> None:
    created = httpx.post(
        f"{url}/v1/workspaces",
        json={"id": workspace, "budget_tokens": budget, **config},
        trust_env=False,
    )
    assert created.status_code == 201, created.text


def submit_all(url: str, workspace: str, n: int) -> list[str]:
    return [
        httpx.post(
            f"{url}/v1/workspaces/{workspace}/runs",
            json={"input": f"task number {i:03d}"},
            trust_env=False,
        ).json()["run"]
        for i in range(n)
    ]


def statuses(url: str, runs: list[str]) -> dict[str, str]:
    return {
        run: httpx.get(f"{url}/v1/runs/{run}", trust_env=False).json()["status"] for run in runs
    }


def settled(url: str, runs: list[str]) -> bool:
    return all(s in ("completed", "suspended", "failed") for s in statuses(url, runs).values())


def ledger(url: str, workspace: str) -> dict[str, int]:
    return httpx.get(f"{url}/v1/workspaces/{workspace}", trust_env=False).json()["budget"]


def one_run_usage(url: str) -> int:
    """What one of these runs uses (the stub is deterministic), measured on its own."""
    create(url, "measure", 10**6)
    (run,) = submit_all(url, "measure", 1)
    wait_until(lambda: settled(url, [run]), 30, "the measuring run")
    usage = httpx.get(f"{url}/v1/runs/{run}", trust_env=False).json()["usage"]
    return int(usage["input_tokens"] + usage["output_tokens"])


def test_forty_runs_on_a_budget_that_fits_them_all_complete(
    settings: Settings, stub: StubServer
) -> None:
    with ServerThread(settings) as server:
        url = server.url
        need = one_run_usage(url)
        stub.configure(latency_ms=100)  # calls overlap, so they contend for the budget
        budget = RUNS * need + need // 2
        create(url, "all", budget, fallback_behavior="suspend")
        runs = submit_all(url, "all", RUNS)
        wait_until(lambda: settled(url, runs), 120, "every run to settle")
        assert set(statuses(url, runs).values()) == {"completed"}
        spent = ledger(url, "all")
        assert spent["committed"] == RUNS * need <= budget and spent["reserved"] == 0
        log = events(url, "all")
        assert not [e for e in log if e["type"] in ("budget_exhausted", "suspended")]
        waited = {e["run"] for e in log if e["type"] == "budget_wait"}
        assert waited, "no run ever waited: the test did not contend for the budget"


def test_a_budget_for_ten_runs_completes_ten_and_suspends_exactly_the_rest(
    settings: Settings, stub: StubServer
) -> None:
    with ServerThread(settings) as server:
        url = server.url
        need = one_run_usage(url)
        stub.configure(latency_ms=100)
        budget = 10 * need + need // 3
        create(url, "ten", budget, fallback_behavior="suspend")
        runs = submit_all(url, "ten", RUNS)
        wait_until(lambda: settled(url, runs), 120, "every run to settle")
        final = statuses(url, runs)
        completed = [r for r, s in final.items() if s == "completed"]
        suspended = [r for r, s in final.items() if s == "suspended"]
        assert len(completed) + len(suspended) == RUNS
        spent = ledger(url, "ten")
        left = budget - spent["committed"]
        assert spent["committed"] <= budget and spent["reserved"] == 0
        log = events(url, "ten")
        exhausted = [e["data"] for e in log if e["type"] == "budget_exhausted"]
        assert len(exhausted) == len(suspended)
        minimum = min(e["needed"] for e in exhausted)
        # Ten fit whole; an eleventh only when what is left still holds its minimum (it then
        # answers with a smaller output allowance, as the unspent budget allows).
        assert len(completed) == 10 + (1 if need // 3 >= minimum else 0)
        assert left < minimum <= need, "a run was suspended while its need was unspent"
        assert all(e["remaining"] < e["needed"] for e in exhausted)
        calls = {e["run"] for e in log if e["type"] == "model_call"}
        assert not calls & set(suspended), "a suspended run had made a model call"


def test_the_higher_priority_run_gets_the_budget_first(
    settings: Settings, stub: StubServer
) -> None:
    with ServerThread(settings) as server:
        url = server.url
        need = one_run_usage(url)
        create(url, "prio", 2 * need + need // 4, fallback_behavior="suspend")
        stub.configure(latency_ms=2000)  # the first call holds the budget while the rest line up
        low = submit_all(url, "prio", 6)
        wait_until(
            lambda: sum(e["type"] == "budget_wait" for e in events(url, "prio")) >= 5,
            30,
            "the other low-priority runs to wait in line",
        )
        high = httpx.post(
            f"{url}/v1/workspaces/prio/runs",
            json={"input": "task number 999", "priority": "high"},
            trust_env=False,
        ).json()["run"]
        wait_until(lambda: settled(url, [*low, high]), 60, "every run to settle")
        assert statuses(url, [high])[high] == "completed"
        assert list(statuses(url, low).values()).count("completed") == 1


def test_forty_gateway_requests_share_one_budget(settings: Settings) -> None:
    with ServerThread(settings, workers=False) as server:
        url = server.url
        client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
        prompt = [{"role": "user", "content": "hello there, gateway"}]

        async def one(workspace: str) -> int:
            reply = await client.chat.completions.create(
                model="stub-model",
                messages=prompt,  # type: ignore[arg-type]
                extra_headers={"X-Mezzo-Workspace": workspace},
            )
            assert reply.usage is not None
            return reply.usage.total_tokens

        async def many(workspace: str) -> list[int | BaseException]:
            return await asyncio.gather(
                *(one(workspace) for _ in range(RUNS)), return_exceptions=True
            )

        create(url, "gw-measure", 10**6)

        async def measure_then_contend() -> tuple[int, list[Any], list[Any]]:
            need = await one("gw-measure")
            create(url, "gw-all", RUNS * need + need // 2, fallback_behavior="fail")
            create(url, "gw-ten", 10 * need + need // 3, fallback_behavior="fail")
            return need, await many("gw-all"), await many("gw-ten")

        need, served, outcomes = asyncio.run(measure_then_contend())
        budget = 10 * need + need // 3
        assert all(isinstance(n, int) for n in served), [
            s for s in served if not isinstance(s, int)
        ]
        assert ledger(url, "gw-all")["committed"] == RUNS * need
        refused = [o for o in outcomes if isinstance(o, BaseException)]
        assert all(
            isinstance(o, openai.RateLimitError) and o.code == "insufficient_quota" for o in refused
        ), refused
        spent = ledger(url, "gw-ten")
        assert spent["committed"] <= budget and spent["reserved"] == 0
        assert sum(o for o in outcomes if isinstance(o, int)) == spent["committed"]
        assert budget - spent["committed"] < need
        assert len(outcomes) - len(refused) >= 10


@pytest.fixture
def stub() -> Iterator[StubServer]:
    with StubServer(StubConfig()) as server:
        yield server
