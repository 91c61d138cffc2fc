"""`mezzo run`, `mezzo events` and `mezzo keys` as a user runs them, against a real server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from core_support import ROOT, ServerThread
from mezzo.stub.server import StubServer


def mezzo(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MEZZO_", "OPENAI_"))}
    return subprocess.run(
        [sys.executable, "-m", "mezzo.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**base, **(env or {})},
    )


def test_run_streams_to_completion_and_events_replays_the_log(server: ServerThread) -> None:
    done = mezzo("run", "hello from the cli", "--workspace", "cli", "--url", server.url)
    assert done.returncode == 0, done.stderr
    assert "echo: hello from the cli" in done.stdout
    assert "completed" in done.stderr
    log = mezzo("events", "cli", "--no-follow", "--url", server.url)
    assert log.returncode == 0, log.stderr
    types = [json.loads(line)["type"] for line in log.stdout.splitlines()]
    assert types[0] == "run_queued" and types[-1] == "completed"


def test_run_json_output_and_failure_exit_code(server: ServerThread, stub: StubServer) -> None:
    # Deltas are live-only: give the subscriber time to connect before the text streams.
    stub.configure(latency_ms=500, tokens_per_second=50, reply_tokens=10)
    ok = mezzo("run", "json please", "--workspace", "cli2", "--url", server.url, "--json")
    assert ok.returncode == 0
    events = [json.loads(line) for line in ok.stdout.splitlines()]
    assert events[-1]["type"] == "completed"
    assert any(e["type"] == "delta" for e in events)
    # A budget too small for any call: the run fails and the command says so with exit 1.
    failed = mezzo("run", "x", "--workspace", "tiny", "--budget", "5", "--url", server.url)
    assert failed.returncode in (1, 4), failed.stderr
    assert "budget" in failed.stderr


def test_errors_are_one_clear_line(server: ServerThread, tmp_path: Path) -> None:
    gone = mezzo("events", "missing", "--no-follow", "--url", server.url)
    assert gone.returncode == 1 and "not found" in gone.stderr and "Traceback" not in gone.stderr
    bad = mezzo("serve", env={"MEZZO_PORT": "99999", "MEZZO_DATA_DIR": str(tmp_path)})
    assert bad.returncode == 2 and "port" in bad.stderr and "Traceback" not in bad.stderr
    missing = mezzo("run", "x", "--attach", str(tmp_path / "nope.fa"), "--url", server.url)
    assert missing.returncode == 2 and "nope.fa" in missing.stderr


def test_keys_create_prints_a_key_that_the_server_accepts(
    tmp_path: Path, server: ServerThread
) -> None:
    store = server.mezzo.settings.store_url
    created = mezzo("keys", "create", "--tenant", "acme", "--store", store)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("mz_")
    import time

    import httpx

    time.sleep(5.5)  # the server re-checks whether keys exist every 5 s
    assert httpx.get(f"{server.url}/v1/workspaces", trust_env=False).status_code == 401
    ok = httpx.get(
        f"{server.url}/v1/workspaces", headers={"authorization": f"Bearer {key}"}, trust_env=False
    )
    assert ok.status_code == 200
