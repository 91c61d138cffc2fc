"""A 10 s soak in CI (the long one is bench/soak_bench.py): mixed load on a real `mezzo serve`
process with its memory sampled; nothing lost, no error, every subscriber holds the whole log."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from soak_support import soak

from core_support import ServeProcess, free_port, process_env
from mezzo.stub.server import StubServer


def websocket_subscribers(url: str) -> float:
    text = httpx.get(f"{url}/metrics", trust_env=False).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "mezzo_subscribers" and sample.labels == {"transport": "websocket"}:
                return sample.value
    return 0.0


def test_short_soak_loses_nothing(tmp_path: Path, stub: StubServer) -> None:
    port = free_port()
    env = process_env(tmp_path / "data", stub, MEZZO_SQLITE_SYNCHRONOUS="NORMAL")
    server = ServeProcess(["serve", "--port", str(port)], env, port).start()
    try:
        assert server.proc is not None
        report = asyncio.run(soak(server.url, server.proc.pid, duration_s=10))
        # Every subscription the clients closed has ended on the server too.
        deadline = time.monotonic() + 20
        while (open_ := websocket_subscribers(server.url)) > 0:
            assert time.monotonic() < deadline, f"{open_} WebSocket handlers never ended"
            time.sleep(0.2)
    finally:
        assert server.terminate() == 0
    assert report.errors == []
    assert len(report.expected) > 50
    assert report.lost() == []
    for name, seqs in report.received.items():
        assert seqs == list(range(1, len(seqs) + 1)), f"{name}: gaps or duplicates"
        assert len(seqs) > len(report.expected) // 2
    assert len(report.rss) > 10 and min(r for _, r in report.rss) > 0
