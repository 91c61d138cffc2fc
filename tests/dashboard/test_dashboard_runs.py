"""The dashboard in a real browser: a run's live timeline, answering a yield, budget top-up,
throttle and cancel, against a real mezzo server and the stub LLM."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from dashboard_support import events_of, open_workspace, seqs_on_page, shot
from playwright.sync_api import Page, expect

from core_support import ServerThread, core_settings
from mezzo.stub.server import StubServer


def test_a_run_fills_the_timeline_live_and_its_yield_is_answered_from_the_page(
    page: Page, server: ServerThread, stub: StubServer, request: pytest.FixtureRequest
) -> None:
    stub.configure(tokens_per_second=10, reply_tokens=20)
    api = httpx.Client(base_url=server.url, trust_env=False)
    api.post("/v1/workspaces", json={"id": "live"}).raise_for_status()
    open_workspace(page, server.url, "live")

    page.fill(
        "#submit-input", 'check the plan\n/call request_human_input {"question": "ok to go on?"}'
    )
    page.click("#submit-form button")
    timeline = page.locator("#timeline")
    expect(timeline.locator('[data-type="run_queued"]')).to_contain_text("check the plan")
    expect(timeline.locator('[data-type="model_call"]').first).to_contain_text(
        "route default · openai:stub-model"
    )
    expect(page.locator("#answer-question")).to_have_text("ok to go on?")
    expect(page.locator("#run-status")).to_have_text("awaiting_input")
    expect(timeline.locator('[data-type="yield"]')).to_contain_text("ok to go on?")
    shot(page, request, "yield")

    page.fill("#answer-text", "yes, go on")
    page.click("#answer-form button")
    # The reply streams at 10 tokens/s: its text shows before the step's result is in the log.
    page.wait_for_function(
        """() => document.querySelector('#live-text').textContent.startsWith('echo: yes')
              && !mezzoDashboard.state.events.some(
                   (e) => e.type === 'model_result' && e.data.step === 2)"""
    )
    shot(page, request, "streaming")
    expect(page.locator("#run-status")).to_have_text("completed")
    expect(timeline.locator('[data-type="input"]')).to_contain_text("yes, go on")
    expect(timeline.locator('[data-type="model_result"]').last).to_contain_text("20 out tokens")
    expect(page.locator("#answer-form")).to_be_hidden()

    log = events_of(server.url, "live")
    assert seqs_on_page(page) == [e["seq"] for e in log]
    expect(page.locator('.provider[data-breaker="closed"]')).to_contain_text("openai:stub-model")
    page.wait_for_function(
        """() => mezzoDashboard.state.tokenSamples
              .some((s) => s.label === 'default · openai:stub-model' && s.tokens > 0)"""
    )


def test_a_client_tool_call_is_answered_by_hand(
    page: Page, server: ServerThread, request: pytest.FixtureRequest
) -> None:
    api = httpx.Client(base_url=server.url, trust_env=False)
    api.post(
        "/v1/workspaces",
        json={"id": "tools", "tools": [{"name": "lookup", "side": "client"}]},
    ).raise_for_status()
    run = api.post(
        "/v1/workspaces/tools/runs", json={"input": 'find it\n/call lookup {"key": "k1"}'}
    ).json()["run"]
    open_workspace(page, server.url, "tools")
    form = page.locator("#tool-forms form").first
    expect(form).to_contain_text('lookup({"key":"k1"})')
    expect(page.locator("#run-status")).to_have_text("awaiting_tool")
    shot(page, request, "tool-call")
    form.locator("textarea").fill("value of k1")
    form.locator("button").click()
    expect(page.locator("#run-status")).to_have_text("completed")
    expect(page.locator('#timeline [data-type="tool_result"]')).to_contain_text(
        "lookup → value of k1"
    )
    assert api.get(f"/v1/runs/{run}").json()["output"] == "echo: value of k1"


@pytest.fixture
def tight(tmp_path: Path, stub: StubServer) -> Iterator[ServerThread]:
    with ServerThread(core_settings(tmp_path / "data", stub, max_output_tokens=40)) as server:
        yield server


def test_a_suspended_workspace_resumes_after_a_top_up_from_the_page(
    page: Page, tight: ServerThread, request: pytest.FixtureRequest
) -> None:
    api = httpx.Client(base_url=tight.url, trust_env=False)
    api.post(
        "/v1/workspaces",
        json={"id": "poor", "budget_tokens": 30, "fallback_behavior": "suspend"},
    ).raise_for_status()
    run = api.post("/v1/workspaces/poor/runs", json={"input": "say something"}).json()["run"]
    open_workspace(page, tight.url, "poor")
    expect(page.locator("#run-status")).to_have_text("suspended")
    expect(page.locator('#timeline [data-type="budget_exhausted"]')).to_contain_text("of 30 left")
    expect(page.locator('.ws-row[data-ws="poor"]')).to_contain_text("1 active")
    shot(page, request, "suspended")

    page.fill("#budget-amount", "5000")
    page.click("#budget-form button")
    expect(page.locator('#ws-numbers [data-field="budget"] b')).to_have_text("5030")
    expect(page.locator('#timeline [data-type="budget_added"]')).to_contain_text("+5000 tokens")
    expect(page.locator('#timeline [data-type="resumed"]')).to_contain_text("budget added")
    expect(page.locator("#run-status")).to_have_text("completed")
    assert api.get(f"/v1/runs/{run}").json()["status"] == "completed"

    # Nothing is suspended any more: the server's refusal is shown, not swallowed.
    page.click("#budget-form button")
    expect(page.locator("#banner")).to_contain_text(
        "add budget: workspace 'poor' has no run suspended"
    )


def test_throttle_and_cancel_from_the_page(
    page: Page, server: ServerThread, stub: StubServer, request: pytest.FixtureRequest
) -> None:
    stub.configure(tokens_per_second=4, reply_tokens=200)
    api = httpx.Client(base_url=server.url, trust_env=False)
    api.post("/v1/workspaces", json={"id": "slow"}).raise_for_status()
    run = api.post("/v1/workspaces/slow/runs", json={"input": "take your time"}).json()["run"]
    open_workspace(page, server.url, "slow")
    expect(page.locator("#run-status")).to_have_text("running")

    page.fill("#throttle-rate", "0.25")
    page.click("#throttle-form button")
    expect(page.locator('#ws-numbers [data-field="throttle"] b')).to_have_text("0.25")
    expect(page.locator('#timeline [data-type="throttled"]')).to_contain_text("throttle rate 0.25")
    assert api.get("/v1/workspaces/slow").json()["throttle_rate"] == 0.25

    expect(page.locator("#live-text")).not_to_be_empty()
    page.click("#cancel-run")
    expect(page.locator("#run-status")).to_have_text("cancelled")
    expect(page.locator('#timeline [data-type="cancelled"]')).to_contain_text(
        "cancelled from the dashboard"
    )
    expect(page.locator("#cancel-run")).to_be_disabled()
    shot(page, request, "cancelled")
    assert api.get(f"/v1/runs/{run}").json()["status"] == "cancelled"

    page.fill("#throttle-rate", "1.5")
    page.click("#throttle-form button")
    page.wait_for_function("() => document.querySelector('#throttle-rate').validity.rangeOverflow")
    assert api.get("/v1/workspaces/slow").json()["throttle_rate"] == 0.25
