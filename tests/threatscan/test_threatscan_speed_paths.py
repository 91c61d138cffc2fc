"""The fast paths keep their promises: `mezzo scan` loads only the scanner, and the parse
cache gives the same bytes, survives a corrupt entry and refuses a shared directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from threatscan_support import FIXTURES
from typer.testing import CliRunner

from mezzo.cli import app

MEZZO = Path(sys.executable).parent / "mezzo"


def test_mezzo_scan_imports_only_the_scanner(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(MEZZO), "scan", "analyze", "--target", str(FIXTURES / "mixed/irsa"), "-f", "sarif"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPROFILEIMPORTTIME": "1", "PATH": "/usr/bin:/bin", **_pythonpath()},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if "|" in line}
    assert "mezzo.threatscan.analyze" in imported
    for heavy in ("mezzo.config", "mezzo.server", "mezzo.sandbox.cli", "mezzo.stub", "uvicorn"):
        assert heavy not in imported, heavy
    assert '"ruleId": "MZ-PATH-003"' in done.stdout


def test_mezzo_help_still_lists_every_subcommand() -> None:
    result = CliRunner().invoke(app, ["--help"])
    for name in ("serve", "worker", "run", "events", "scan", "sandbox", "stub-llm", "keys"):
        assert name in result.stdout


def test_the_cache_gives_identical_output_and_survives_a_corrupt_entry(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    runs = []
    for _ in range(2):
        result = CliRunner().invoke(
            app,
            ["scan", "analyze", "-t", str(FIXTURES), "-f", "sarif", "--cache", str(cache)],
        )
        assert result.exit_code == 0, result.output
        runs.append(result.stdout)
    uncached = CliRunner().invoke(app, ["scan", "analyze", "-t", str(FIXTURES), "-f", "sarif"])
    assert runs[0] == runs[1] == uncached.stdout
    entries = sorted(p for p in cache.rglob("*") if p.is_file())
    assert len(entries) > 50
    for entry in entries:
        entry.write_bytes(b"not a pickle")
    again = CliRunner().invoke(
        app, ["scan", "analyze", "-t", str(FIXTURES), "-f", "sarif", "--cache", str(cache)]
    )
    assert again.stdout == uncached.stdout


def test_a_cache_directory_others_can_write_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    result = CliRunner().invoke(
        app, ["scan", "analyze", "-t", str(FIXTURES / "mixed/irsa"), "--cache", str(shared)]
    )
    assert result.exit_code == 2
    assert "writable by other users" in result.stderr


def _pythonpath() -> dict[str, str]:
    import os

    return {"PYTHONPATH": os.environ["PYTHONPATH"]} if "PYTHONPATH" in os.environ else {}
