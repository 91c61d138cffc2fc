"""`mezzo serve` starts where bubblewrap is missing or cannot isolate: it says once that the
`run_code` tool is off and how to turn it on, refuses that tool alone, and `mezzo doctor`
reports it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
from serve_support import Serve, path_without_bwrap, serve_env

from core_support import ROOT, free_port, wait_until


def _ready(url: str, serve: Serve) -> None:
    serve.wait_for(r"mezzo .* on http://")
    wait_until(lambda: _answers(f"{url}/readyz"), 30, f"{url}/readyz")


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, trust_env=False).status_code == 200
    except httpx.TransportError:
        return False


def test_serve_starts_without_bwrap_and_turns_run_code_off(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = serve_env(tmp_path, PATH=path_without_bwrap(tmp_path))
    with Serve(["--port", str(port)], env) as serve:
        _ready(url, serve)
        refused = httpx.post(
            f"{url}/v1/workspaces",
            json={"id": "coder", "tools": [{"name": "run_code", "side": "server"}]},
            trust_env=False,
        )
        assert refused.status_code == 400, refused.text
        error = refused.json()["error"]
        assert "run_code" in error and "off" in error and "bubblewrap" in error
        others = httpx.post(
            f"{url}/v1/workspaces",
            json={"id": "scanner", "tools": [{"name": "scan_infrastructure", "side": "server"}]},
            trust_env=False,
        )
        assert others.status_code == 201, others.text
        output = serve.stop()
    assert "did not start" not in output and "Traceback" not in output
    said = [line for line in output.splitlines() if "run_code tool" in line]
    assert len(said) == 1, output
    assert "off" in said[0] and "apt-get install bubblewrap" in said[0]


def test_a_bwrap_that_cannot_isolate_turns_run_code_off_too(tmp_path: Path) -> None:
    folder = Path(path_without_bwrap(tmp_path))
    fake = folder / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n")
    fake.chmod(0o755)
    port = free_port()
    env = serve_env(tmp_path, PATH=str(folder))
    with Serve(["--port", str(port)], env) as serve:
        _ready(f"http://127.0.0.1:{port}", serve)
        output = serve.stop()
    said = [line for line in output.splitlines() if "run_code tool" in line]
    assert len(said) == 1, output
    assert "Permission denied" in said[0] and "user namespaces" in said[0]


def test_doctor_reports_run_code_off_as_a_warning(tmp_path: Path) -> None:
    env = serve_env(tmp_path, PATH=path_without_bwrap(tmp_path))
    done = subprocess.run(
        [sys.executable, "-m", "mezzo.cli", "doctor"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (line,) = [line for line in done.stdout.splitlines() if "run_code tool" in line]
    assert line.startswith("warning") and "apt-get install bubblewrap" in line
    assert "mezzo is ready to start" in done.stdout
