"""Helpers for the dashboard's browser tests."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from core_support import ROOT

ARTIFACTS = ROOT / "test-artifacts" / "dashboard"


def shot(page: Page, request: pytest.FixtureRequest, label: str) -> None:
    """A screenshot of one moment of a test, kept as an artefact."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{request.node.name}-{label}")
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def open_workspace(page: Page, url: str, workspace: str) -> None:
    page.goto(f"{url}/")
    page.locator(f'.ws-row[data-ws="{workspace}"]').click()
    expect(page.locator("#ws-title")).to_have_text(workspace)
    expect(page.locator("#conn")).to_have_text("live")


def events_of(url: str, workspace: str, headers: dict[str, str] | None = None) -> list[Any]:
    response = httpx.get(
        f"{url}/v1/workspaces/{workspace}/events",
        params={"limit": 10000},
        headers=headers or {},
        trust_env=False,
    )
    response.raise_for_status()
    return list(response.json())


def seqs_on_page(page: Page) -> list[int]:
    """The seq of every durable event the page holds for its workspace, in order."""
    return list(page.evaluate("() => mezzoDashboard.state.events.map((e) => e.seq)"))
