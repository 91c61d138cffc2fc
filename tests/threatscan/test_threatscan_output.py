"""SARIF against the official schema, determinism, text/json, --explain, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from click.testing import Result
from threatscan_support import FIXTURES, SCHEMA
from typer.testing import CliRunner

from mezzo.cli import app

MEZZO = Path(sys.executable).parent / "mezzo"
ALL = FIXTURES  # every fixture at once: many files, paths, skipped bad input


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(MEZZO), "scan", "analyze", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
        check=False,
    )


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, ["scan", "analyze", *args])


@pytest.fixture(scope="module")
def sarif_document() -> dict:  # type: ignore[type-arg]
    result = invoke("--target", str(ALL), "--format", "sarif")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_sarif_is_valid_against_the_official_schema(sarif_document: dict) -> None:  # type: ignore[type-arg]
    schema = json.loads(SCHEMA.read_text())
    jsonschema.validate(sarif_document, schema)


def test_sarif_paths_have_code_flows_with_file_and_line_for_each_hop(sarif_document: dict) -> None:  # type: ignore[type-arg]
    run = sarif_document["runs"][0]
    rule_ids = [rule["id"] for rule in run["tool"]["driver"]["rules"]]
    assert len(rule_ids) == len(set(rule_ids))
    assert all(rule["help"]["text"] for rule in run["tool"]["driver"]["rules"])
    paths = [r for r in run["results"] if r["ruleId"].startswith("MZ-PATH")]
    assert len(paths) >= 6
    for result in paths:
        assert rule_ids[result["ruleIndex"]] == result["ruleId"]
        steps = result["codeFlows"][0]["threadFlows"][0]["locations"]
        assert len(steps) >= 3
        for step in steps:
            physical = step["location"]["physicalLocation"]
            assert (Path.cwd() / physical["artifactLocation"]["uri"]).is_file()
            assert physical["region"]["startLine"] >= 1
            assert "attacker" in step["location"]["message"]["text"]
    fingerprints = [r["partialFingerprints"]["mezzoFindingHash/v1"] for r in run["results"]]
    assert len(fingerprints) == len(set(fingerprints))
    skipped = run["invocations"][0]["toolExecutionNotifications"]
    assert any(
        "bad/broken.tf" in n["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        for n in skipped
        if "locations" in n
    )


def test_two_runs_give_identical_bytes(tmp_path: Path) -> None:
    outputs = []
    for attempt in range(2):  # two real processes: different hash seeds, same bytes
        out = tmp_path / f"{attempt}.sarif"
        result = run_cli("--target", str(ALL), "--format", "sarif", "--output", str(out))
        assert result.returncode == 0, result.stderr
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]
    assert b'Z"' not in outputs[0]  # no ISO timestamps anywhere
    for fmt in ("json", "text"):
        first, second = (invoke("--target", str(ALL), "--format", fmt).stdout for _ in range(2))
        assert first == second and len(first) > 1000


def test_fingerprints_survive_lines_moving(tmp_path: Path) -> None:
    source = (FIXTURES / "k8s/exposed-secrets/app.yaml").read_text()
    (tmp_path / "app.yaml").write_text(source)
    first = invoke("--target", str(tmp_path), "--format", "json")
    (tmp_path / "app.yaml").write_text("# a new comment\n# and another\n" + source)
    second = invoke("--target", str(tmp_path), "--format", "json")

    def prints(output: str) -> list[tuple[str, int]]:
        return [(f["fingerprint"], f["location"]["line"]) for f in json.loads(output)["findings"]]

    assert [p for p, _ in prints(first.stdout)] == [p for p, _ in prints(second.stdout)]
    assert [line + 2 for _, line in prints(first.stdout)] == [
        line for _, line in prints(second.stdout)
    ]


def test_sarif_uris_are_relative_to_the_working_directory() -> None:
    result = run_cli(
        "--target", "fixtures/k8s/exposed-secrets", "--format", "sarif", cwd=FIXTURES.parent
    )
    document = json.loads(result.stdout)
    uri = document["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"][
        "uri"
    ]
    assert uri == "fixtures/k8s/exposed-secrets/app.yaml"


def test_fail_on_sets_the_exit_code() -> None:
    target = str(FIXTURES / "k8s/exposed-secrets")
    assert invoke("--target", target).exit_code == 0
    assert invoke("--target", target, "--fail-on", "high").exit_code == 1
    assert invoke("--target", target, "--fail-on", "critical").exit_code == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "/nonexistent/dir"], "does not exist"),
        (["--target", ".", "--depth", "medium"], "--depth"),
        (["--target", ".", "--format", "xml"], "--format"),
        (["--target", ".", "--fail-on", "urgent"], "unknown severity"),
    ],
)
def test_bad_arguments_give_one_error_line_and_exit_2(args: list[str], message: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith("error:")


def test_text_and_json_formats() -> None:
    target = str(FIXTURES / "terraform/internet-to-datastore")
    text = invoke("--target", target, "--format", "text")
    assert "MZ-PATH-002" in text.output and "main.tf:45" in text.output
    assert "\x1b[" not in text.output  # no colour when not a terminal
    document = json.loads(invoke("--target", target, "--format", "json").stdout)
    assert document["findings"][0]["steps"][1]["location"] == {"path": "main.tf", "line": 17}


def test_explain_writes_inert_scripts(tmp_path: Path) -> None:
    explain_dir = tmp_path / "explain"
    result = invoke("--target", str(FIXTURES / "mixed/irsa"), "--explain", str(explain_dir))
    assert result.exit_code == 0, result.output
    (script,) = sorted(explain_dir.iterdir())
    assert not os.access(script, os.X_OK)
    lines = script.read_text().splitlines()
    assert lines[0] == "#!/bin/sh"
    code = [line for line in lines if line.strip() and not line.startswith("#")]
    assert code == ["exit 0"]
    assert any("$ aws secretsmanager get-secret-value" in line for line in lines)
    assert any("cluster.yaml:8" in line for line in lines)
    done = subprocess.run(
        ["sh", str(script)], capture_output=True, text=True, timeout=10, check=False
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_text_report_is_coloured_on_a_terminal() -> None:
    from mezzo.threatscan.analyze import scan
    from mezzo.threatscan.render import text

    report = scan(FIXTURES / "k8s/exposed-secrets")
    coloured, plain = text(report, color=True), text(report, color=False)
    assert "\x1b[" in coloured and "\x1b[" not in plain
    assert "MZ-PATH-003" in plain and "app.yaml:48" in plain


def test_unwritable_explain_directory_is_one_error_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = invoke("--target", str(FIXTURES / "mixed/irsa"), "--explain", str(blocker / "x"))
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: cannot write to")
