"""The dashboard in a real browser: API keys, tenant scoping, dead letters, thousands of events,
many workspaces, and recovering from a dropped socket and a server restart."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from dashboard_support import events_of, open_workspace, seqs_on_page, shot
from playwright.sync_api import Page, expect

from core_support import ServerThread, core_settings
from mezzo import keys
from mezzo.protocol import CreateWorkspace, NewEvent
from mezzo.server.auth import create_key
from mezzo.store.base import Store
from mezzo.stub.server import StubServer


async def dead_letter_every_job(store: Store) -> None:
    """Fail every queued run job until its attempts are spent (no workers run here)."""
    while await store.queue_depth("runs"):
        for job in await store.lease("runs", "test-worker", 100, 30):
            await store.retry(job, 0, "provider exploded")


@pytest.fixture
def keyed(tmp_path: Path, stub: StubServer) -> Iterator[tuple[ServerThread, str, str]]:
    """A server with two tenants' keys and no workers, so queued jobs stay where we put them."""
    with ServerThread(core_settings(tmp_path / "data", stub), workers=False) as server:
        alpha = server.call(create_key(server.mezzo.store, "alpha", "a"))
        beta = server.call(create_key(server.mezzo.store, "beta", "b"))
        for key, workspace in ((alpha, "alpha-ws"), (beta, "beta-ws")):
            auth = {"authorization": f"Bearer {key}"}
            httpx.post(
                f"{server.url}/v1/workspaces", json={"id": workspace}, headers=auth, trust_env=False
            ).raise_for_status()
            httpx.post(
                f"{server.url}/v1/workspaces/{workspace}/runs",
                json={"input": f"work of {workspace}"},
                headers=auth,
                trust_env=False,
            ).raise_for_status()
        yield server, alpha, beta


def test_a_wrong_key_is_refused_clearly_and_a_good_one_shows_only_its_tenant(
    page: Page, keyed: tuple[ServerThread, str, str], request: pytest.FixtureRequest
) -> None:
    server, alpha, _ = keyed
    page.goto(f"{server.url}/")
    dialog = page.locator("#key-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#key-message")).to_contain_text("needs an API key")

    page.fill("#key-input", "mz_not-a-real-key")
    page.click("#key-form button")
    expect(dialog).to_be_visible()
    expect(page.locator("#key-message")).to_contain_text(
        "The server refused this API key (invalid API key)"
    )
    shot(page, request, "refused")

    page.fill("#key-input", alpha)
    page.click("#key-form button")
    expect(dialog).to_be_hidden()
    expect(page.locator(".ws-row")).to_have_count(1)
    expect(page.locator(".ws-row")).to_have_attribute("data-ws", "alpha-ws")

    # The key lasts for the browser session: a reload does not ask again, and the WebSocket
    # carries it too.
    page.reload()
    open_workspace(page, server.url, "alpha-ws")
    expect(page.locator('#timeline [data-type="run_queued"]')).to_contain_text("work of alpha-ws")
    expect(dialog).to_be_hidden()


def test_dead_letters_show_only_the_tenants_runs_and_requeue_from_the_page(
    page: Page, keyed: tuple[ServerThread, str, str], request: pytest.FixtureRequest
) -> None:
    server, alpha, beta = keyed
    server.call(dead_letter_every_job(server.mezzo.store))
    as_beta = {"authorization": f"Bearer {beta}"}
    beta_view = httpx.get(f"{server.url}/v1/system", headers=as_beta, trust_env=False).json()
    assert [d["workspace"] for d in beta_view["dead_letters"]] == ["beta-ws"]
    alpha_view = httpx.get(
        f"{server.url}/v1/system", headers={"authorization": f"Bearer {alpha}"}, trust_env=False
    ).json()
    [alpha_job] = alpha_view["dead_letters"]
    refused = httpx.post(
        f"{server.url}/v1/system/dead/{alpha_job['job']}/requeue", headers=as_beta, trust_env=False
    )
    assert refused.status_code == 404

    page.goto(f"{server.url}/")
    page.fill("#key-input", alpha)
    page.click("#key-form button")
    dead = page.locator("#dead-letters .dead")
    expect(dead).to_have_count(1)
    attempts = server.mezzo.settings.max_attempts
    expect(dead).to_contain_text(f"in alpha-ws · {attempts} attempts")
    expect(dead).to_contain_text("provider exploded")
    # The queue and the workers are the whole server's: a tenant's key does not see them.
    expect(page.locator("#queue-numbers")).to_contain_text("shown to admin keys only")
    expect(page.locator("#workers")).to_contain_text("shown to admin keys only")
    assert alpha_view["queue_depth"] is None and alpha_view["workers"] is None
    shot(page, request, "dead-letter")

    dead.locator("button").click()
    expect(page.locator("#dead-letters")).to_have_text("none")
    assert server.call(server.mezzo.store.queue_depth("runs")) == {1: 1}  # requeued
    beta_after = httpx.get(f"{server.url}/v1/system", headers=as_beta, trust_env=False).json()
    assert [d["workspace"] for d in beta_after["dead_letters"]] == ["beta-ws"]


async def create_workspaces(server: ServerThread, count: int) -> None:
    create = server.mezzo.create_workspace
    await asyncio.gather(
        *(create("local", CreateWorkspace(id=f"ws-{i:04d}")) for i in range(count))
    )


def test_thousands_of_events_and_many_workspaces_stay_light(
    page: Page, server: ServerThread, request: pytest.FixtureRequest
) -> None:
    store = server.mezzo.store
    server.call(create_workspaces(server, 100))
    throttles = [NewEvent(type="throttled", data={"rate": 0.5}) for _ in range(3000)]
    server.call(store.append(keys.workspace_key("local", "ws-0042"), None, throttles, None))

    page.goto(f"{server.url}/")
    expect(page.locator("#ws-count")).to_have_text("(100)")
    assert page.locator(".ws-row").count() < 40
    page.fill("#ws-filter", "ws-0042")
    expect(page.locator(".ws-row")).to_have_count(1)
    page.locator('.ws-row[data-ws="ws-0042"]').click()

    expect(page.locator("#event-count")).to_have_text("(3000 shown, 3000 in workspace)")
    expect(page.locator('#timeline [data-seq="3000"]')).to_be_visible()
    assert page.locator("#timeline .event").count() < 60
    shot(page, request, "tail")

    page.locator("#timeline").evaluate("(node) => { node.scrollTop = 0; }")
    expect(page.locator('#timeline [data-seq="1"]')).to_be_visible()
    assert page.locator("#timeline .event").count() < 60
    # Scrolled up, the reader keeps their place while new events arrive.
    server.call(store.append(keys.workspace_key("local", "ws-0042"), None, throttles[:1], None))
    expect(page.locator("#event-count")).to_have_text("(3001 shown, 3001 in workspace)")
    expect(page.locator('#timeline [data-seq="1"]')).to_be_visible()


def submit(url: str, workspace: str, text: str) -> str:
    run = httpx.post(
        f"{url}/v1/workspaces/{workspace}/runs", json={"input": text}, trust_env=False
    ).json()["run"]
    return str(run)


def test_the_page_recovers_from_a_dropped_socket_and_a_server_restart(
    page: Page, tmp_path: Path, stub: StubServer, request: pytest.FixtureRequest
) -> None:
    settings = core_settings(tmp_path / "data", stub)
    first = ServerThread(settings).__enter__()
    try:
        httpx.post(f"{first.url}/v1/workspaces", json={"id": "r"}, trust_env=False)
        submit(first.url, "r", "before anything")
        open_workspace(page, first.url, "r")
        expect(page.locator("#run-status")).to_have_text("completed")

        page.evaluate("() => mezzoDashboard.dropSocket()")
        submit(first.url, "r", "after the drop")
        expect(page.locator('.run-row[data-status="completed"]')).to_have_count(2)
        expect(page.locator("#conn")).to_have_text("live")
        statuses = page.evaluate("() => mezzoDashboard.state.connectionLog")
        assert statuses[-2:] == ["reconnecting", "live"]
        assert seqs_on_page(page) == [e["seq"] for e in events_of(first.url, "r")]
    finally:
        first.__exit__(None, None, None)

    expect(page.locator("#conn")).to_have_text("reconnecting…")
    expect(page.locator("#banner")).to_contain_text("cannot be reached; retrying")
    shot(page, request, "server-down")

    second = ServerThread(settings)
    second.server.config.port = first.port
    with second:
        submit(first.url, "r", "after the restart")
        expect(page.locator('.run-row[data-status="completed"]')).to_have_count(3)
        expect(page.locator("#conn")).to_have_text("live")
        expect(page.locator("#banner")).to_be_hidden()
        assert seqs_on_page(page) == [e["seq"] for e in events_of(first.url, "r")]
        shot(page, request, "recovered")


def test_a_workspace_that_vanishes_is_reported_and_let_go(
    page: Page, server: ServerThread, request: pytest.FixtureRequest
) -> None:
    httpx.post(f"{server.url}/v1/workspaces", json={"id": "gone"}, trust_env=False)
    httpx.post(f"{server.url}/v1/workspaces", json={"id": "stays"}, trust_env=False)
    open_workspace(page, server.url, "gone")
    store = server.mezzo.store
    server.call(store.kv_delete(keys.workspace(keys.workspace_key("local", "gone"))))
    expect(page.locator("#banner")).to_contain_text("Workspace gone no longer exists")
    expect(page.locator("#no-ws")).to_be_visible()
    expect(page.locator(".ws-row")).to_have_count(1)
    shot(page, request, "vanished")
    page.locator('.ws-row[data-ws="stays"]').click()
    expect(page.locator("#conn")).to_have_text("live")
    expect(page.locator("#banner")).to_be_hidden()


def test_provider_limits_learned_and_an_open_breaker_are_shown(
    page: Page, server: ServerThread, stub: StubServer, request: pytest.FixtureRequest
) -> None:
    stub.configure(rpm=600, tpm=90000)
    httpx.post(f"{server.url}/v1/workspaces", json={"id": "p"}, trust_env=False)
    submit(server.url, "p", "hello")
    open_workspace(page, server.url, "p")
    provider = page.locator('#providers .provider:has-text("openai:stub-model")')
    expect(provider).to_contain_text("rpm 600 · tpm 90000 (learned)")
    expect(provider).to_have_attribute("data-breaker", "closed")

    stub.configure(fail_midstream=1.0)
    submit(server.url, "p", "this one hits a broken provider")
    expect(provider).to_have_attribute("data-breaker", "open")
    expect(provider).to_contain_text("breaker open")
    expect(page.locator('#timeline [data-type="retry"]').first).to_be_visible()
    shot(page, request, "breaker-open")
