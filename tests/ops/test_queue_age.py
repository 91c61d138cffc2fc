"""Queue depth and age by priority on /metrics, from a server whose workers are off."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx

from core_support import ServerThread, core_settings
from mezzo.stub.server import StubServer


def gauge(text: str, name: str, priority: str) -> float:
    match = re.search(rf'^{name}\{{priority="{priority}"\}} (\S+)$', text, re.M)
    assert match, f"{name}{{priority={priority}}} missing"
    return float(match.group(1))


def test_metrics_show_queue_depth_and_age_by_priority(tmp_path: Path, stub: StubServer) -> None:
    with ServerThread(core_settings(tmp_path / "data", stub), workers=False) as server:
        client = httpx.Client(base_url=server.url, trust_env=False)
        client.post("/v1/workspaces", json={"id": "q"})
        for priority in ("low", "low", "high"):
            client.post("/v1/workspaces/q/runs", json={"input": "x", "priority": priority})
        time.sleep(0.3)
        text = client.get("/metrics").text
        assert gauge(text, "mezzo_queue_depth", "low") == 2
        assert gauge(text, "mezzo_queue_depth", "high") == 1
        assert gauge(text, "mezzo_queue_depth", "normal") == 0
        assert gauge(text, "mezzo_queue_age_seconds", "low") >= 0.3
        assert gauge(text, "mezzo_queue_age_seconds", "high") >= 0.3
        assert gauge(text, "mezzo_queue_age_seconds", "normal") == 0
