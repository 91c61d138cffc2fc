"""OpenTelemetry spans, linked from the submit request through the job to the provider call."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from core_support import ROOT, ServerThread, core_settings
from mezzo import tracing
from mezzo.stub.server import StubServer


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.configure_tracing(exporter=exporter)
    try:
        yield exporter
    finally:
        tracing._enabled = False


def test_one_trace_from_ingestion_through_the_queue_to_provider_and_tool(
    spans: InMemorySpanExporter, tmp_path: Path, stub: StubServer
) -> None:
    with ServerThread(core_settings(tmp_path / "data", stub)) as server:
        url = server.url
        httpx.post(
            f"{url}/v1/workspaces",
            json={"id": "t", "tools": [{"name": "scan_infrastructure", "side": "server"}]},
            trust_env=False,
        )
        task = f'go\n/call scan_infrastructure {{"target": "{tmp_path}", "depth": "quick"}}'
        run = httpx.post(
            f"{url}/v1/workspaces/t/runs", json={"input": task}, trust_env=False
        ).json()["run"]
        deadline = time.monotonic() + 30
        while httpx.get(f"{url}/v1/runs/{run}", trust_env=False).json()["status"] != "completed":
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finished = spans.get_finished_spans()
    by_name: dict[str, list] = {}
    for span in finished:
        by_name.setdefault(span.name, []).append(span)
    (submit,) = by_name["mezzo.submit"]
    steps = by_name["mezzo.step"]
    providers = by_name["mezzo.provider"]
    (tool,) = by_name["mezzo.tool"]
    trace_id = submit.context.trace_id
    assert all(s.context.trace_id == trace_id for s in [*steps, *providers, tool])
    assert steps[0].parent is not None and steps[0].parent.span_id == submit.context.span_id
    step_ids = {s.context.span_id for s in steps}
    assert all(p.parent is not None and p.parent.span_id in step_ids for p in providers)
    assert tool.attributes["tool"] == "scan_infrastructure"
    assert {p.attributes["model"] for p in providers} == {"stub-model"}


def test_an_unknown_tracing_mode_stops_the_server_with_a_clear_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mezzo.cli", "serve", "--port", "0"],
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            "MEZZO_DATA_DIR": str(tmp_path),
            "MEZZO_TRACING": "jaeger",
        },
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 2
    assert "MEZZO_TRACING='jaeger'" in done.stderr and "Traceback" not in done.stderr
