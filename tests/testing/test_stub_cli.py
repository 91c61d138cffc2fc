"""`mezzo stub-llm` as a real subprocess."""

from __future__ import annotations

import re
import subprocess
import sys

import httpx

RUN_CLI = "from mezzo.stub.cli import app; app()"
OPTIONS = "--port 0 --rpm 7 --model tiny --seed 3 --fail-midstream 0.01"


def test_cli_serves_with_its_options() -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", RUN_CLI, *OPTIONS.split()],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/v1", line)
        assert match, line
        base = f"http://127.0.0.1:{match.group(1)}"
        with httpx.Client(base_url=base, trust_env=False) as client:
            config = client.get("/_stub/config").json()
            answer = client.post("/v1/responses", json={"model": "tiny", "input": "ping"})
        assert (config["rpm"], config["seed"], config["models"]) == (7, 3, ["tiny"])
        assert config["fail_midstream"] == 0.01
        assert answer.json()["output"][0]["content"][0]["text"] == "echo: ping"
        assert answer.headers["x-ratelimit-limit-requests"] == "7"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_cli_rejects_bad_options_with_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-c", RUN_CLI, "--fail-500", "1.5"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: fail_500: Input should be less than or equal to 1"
    ]
