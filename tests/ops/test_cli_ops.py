"""`mezzo serve` refuses a misconfiguration naming the setting and the fix; `mezzo doctor`
and `mezzo admin` through the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from core_support import ROOT, ServeProcess, ServerThread, core_settings, free_port, process_env
from mezzo.server.auth import create_key
from mezzo.stub.server import StubServer


def mezzo_cli(
    args: list[str], env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mezzo.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEZZO_", "OPENAI_"))}
    env.update({"MEZZO_DATA_DIR": str(tmp_path / "data"), "COLUMNS": "250", **extra})
    return env


@pytest.mark.parametrize(
    ("extra", "setting", "fix"),
    [
        ({"MEZZO_STORE": "postgres://db/mezzo"}, "'store'", "sqlite:///PATH"),
        ({"MEZZO_STORE": "redis://127.0.0.1:1/0"}, "'store'", "start the Redis server"),
        ({"MEZZO_ROUTES": '{"default": {"primary": "acme:big"}}'}, "'routes'", "provider:model"),
        ({"MEZZO_LOCAL_MODEL_PATH": "/nonexistent/model.gguf"}, "'local_model_path'", ".gguf"),
    ],
    ids=["unknown-store-url", "unreachable-redis", "unknown-provider", "model-file"],
)
def test_serve_refuses_a_misconfiguration(
    tmp_path: Path, extra: dict[str, str], setting: str, fix: str
) -> None:
    done = mezzo_cli(["serve", "--port", "1"], clean_env(tmp_path, **extra))
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    first = done.stderr.splitlines()[0]
    assert first.startswith("error:") and setting in first and "fix:" in first and fix in first


def test_worker_refuses_too(tmp_path: Path) -> None:
    done = mezzo_cli(["worker"], clean_env(tmp_path, MEZZO_STORE="nope://x"))
    assert done.returncode == 2 and "'store'" in done.stderr and "Traceback" not in done.stderr


def test_doctor_reports_each_check(tmp_path: Path, stub: StubServer) -> None:
    routes = '{"default": {"primary": "openai:stub-model"}}'
    env = clean_env(
        tmp_path, MEZZO_ROUTES=routes, OPENAI_BASE_URL=stub.base_url, OPENAI_API_KEY="t"
    )
    healthy = mezzo_cli(["doctor"], env)
    assert healthy.returncode == 0, healthy.stdout
    for expected in ("store sqlite:///", "answers (HTTP 200)", "bubblewrap at", "API key is set"):
        assert expected in healthy.stdout
    env["OPENAI_BASE_URL"] = "http://127.0.0.1:1/v1"
    env.pop("OPENAI_API_KEY")
    sick = mezzo_cli(["doctor"], env)
    assert sick.returncode == 1
    assert "is unreachable" in sick.stdout and "no API key is set" in sick.stdout
    assert "2 problem(s) found" in sick.stdout


def test_admin_cli_against_a_server(tmp_path: Path, stub: StubServer) -> None:
    with ServerThread(core_settings(tmp_path / "data", stub)) as server:
        admin = server.call(create_key(server.mezzo.store, "ops", admin=True))
        user = server.call(create_key(server.mezzo.store, "acme"))
        env = clean_env(tmp_path, MEZZO_URL=server.url, MEZZO_API_KEY=admin)
        listed = mezzo_cli(["admin", "workers", "--json"], env)
        assert listed.returncode == 0, listed.stderr
        assert [w["name"] for w in json.loads(listed.stdout)] == [server.mezzo.pool.name]  # type: ignore[union-attr]
        assert json.loads(mezzo_cli(["admin", "dead", "--json"], env).stdout) == []
        mistake = mezzo_cli(["admin", "requeue", "run:nope"], env)
        assert mistake.returncode == 1
        assert mistake.stderr.strip().splitlines() == [
            "error: 409: job 'run:nope' is not dead-lettered; only dead jobs can be requeued"
        ]
        refused = mezzo_cli(["admin", "workers", "--api-key", user], env)
        assert refused.returncode == 1 and "403" in refused.stderr


def test_a_worker_process_exposes_its_metrics(
    tmp_path: Path, stub: StubServer, processes: list[ServeProcess]
) -> None:
    env = process_env(tmp_path / "data", stub)
    api_port, metrics_port = free_port(), free_port()
    api = ServeProcess(["serve", "--port", str(api_port), "--no-workers"], env, api_port).start()
    processes.append(api)
    worker = ServeProcess(["worker", "--metrics-port", str(metrics_port)], env).start()
    processes.append(worker)
    client = httpx.Client(base_url=api.url, trust_env=False)
    client.post("/v1/workspaces", json={"id": "w"}).raise_for_status()
    run = client.post("/v1/workspaces/w/runs", json={"input": "hi"}).json()["run"]
    deadline = time.monotonic() + 30
    while client.get(f"/v1/runs/{run}").json()["status"] != "completed":
        assert time.monotonic() < deadline, "the worker did not finish the run"
        time.sleep(0.1)
    text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", trust_env=False).text
    assert 'mezzo_runs_total{status="completed"} 1.0' in text
    assert "mezzo_jobs_leased_total 1.0" in text
