"""Bad input is skipped with a reason; the scan goes on and never crashes or hangs."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest
from threatscan_support import FIXTURES, rule_ids

from mezzo.threatscan.analyze import scan
from mezzo.threatscan.sources import MAX_FILE_BYTES
from mezzo.threatscan.tool import scan_for_agent


def test_broken_files_are_skipped_with_reasons_and_the_rest_is_scanned() -> None:
    report = scan(FIXTURES / "bad")
    reasons = {s.path: s.reason for s in report.skipped}
    assert reasons["broken.tf"].startswith("unparseable HCL")
    assert (
        reasons["broken.yaml"].startswith("unparseable YAML") and "line" in reasons["broken.yaml"]
    )
    assert reasons["broken.json"].startswith("unparseable JSON")
    assert "helm template" in reasons["helm-template.yaml"]
    assert reasons["binary.tf"] == "binary file"
    assert reasons["utf16.yaml"] == "binary file"
    assert rule_ids(report) == ["MZ-K8S-001"]


@pytest.mark.timeout(30)
def test_symlink_loops_and_links_out_of_the_tree_are_not_followed(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "a").mkdir(parents=True)
    (root / "a" / "loop").symlink_to(root, target_is_directory=True)
    (root / "a" / "self").symlink_to(root / "a", target_is_directory=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.tf").write_text('resource "aws_s3_bucket" "x" {}\n')
    (root / "escape").symlink_to(outside, target_is_directory=True)
    (root / "dangling.yaml").symlink_to(tmp_path / "missing.yaml")
    (root / "a" / "pod.yaml").write_text((FIXTURES / "bad" / "ok.yaml").read_text())
    report = scan(root)
    assert rule_ids(report) == ["MZ-K8S-001"]
    assert report.stats["files"] == 1


def test_huge_files_are_skipped(tmp_path: Path) -> None:
    big = tmp_path / "huge.tf"
    with big.open("w") as handle:
        handle.write("# " + "x" * 1000 + "\n")
        handle.truncate(MAX_FILE_BYTES + 1)
    report = scan(tmp_path)
    assert report.skipped[0].path == "huge.tf"
    assert report.skipped[0].reason.startswith("file too large")


def test_deeply_nested_documents_do_not_crash(tmp_path: Path) -> None:
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (tmp_path / "deep.yaml").write_text("a: " + "[" * 50_000 + "]" * 50_000 + "\n")
    (tmp_path / "aliases.yaml").write_text(
        "a: &a [x, x, x, x, x, x, x, x, x]\n"
        + "".join(f"{c}: &{c} [{', '.join(['*' + chr(ord(c) - 1)] * 9)}]\n" for c in "bcdefgh")
    )
    report = scan(tmp_path)
    skipped = {s.path for s in report.skipped}
    assert {"deep.json", "deep.yaml"} <= skipped


def test_unknown_resource_types_and_non_kubernetes_yaml_are_ignored(tmp_path: Path) -> None:
    (tmp_path / "main.tf").write_text('resource "acme_widget" "w" {\n  size = 3\n}\n')
    (tmp_path / "ci.yml").write_text("on: push\njobs: {}\n")
    (tmp_path / "package.json").write_text(json.dumps({"name": "x", "version": "1.0.0"}))
    report = scan(tmp_path)
    assert report.findings == [] and report.skipped == []


@pytest.mark.timeout(30)
def test_fifos_and_devices_are_not_read(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.yaml")  # opening it for reading would block forever
    (tmp_path / "null.tf").symlink_to("/dev/null")
    report = scan(tmp_path)
    assert report.findings == [] and report.stats["files"] == 0


def test_agent_tool_returns_errors_and_a_compact_report() -> None:
    assert scan_for_agent("/does/not/exist").startswith("error:")
    assert scan_for_agent(str(FIXTURES), depth="sideways").startswith("error:")
    report = scan_for_agent(str(FIXTURES / "mixed/irsa"))
    assert report.splitlines()[0].startswith("1 findings (1 high)")
    assert "MZ-PATH-003" in report and "aws.tf:20" in report
    limited = scan_for_agent(str(FIXTURES), max_findings=2)
    assert limited.count("\n- [") == 2 and "more findings not shown" in limited
    assert limited == scan_for_agent(str(FIXTURES), max_findings=2)


def _mutants(count: int) -> list[tuple[str, str]]:
    """Fixture files with values swapped for values of the wrong type (fixed seed)."""
    rng = random.Random(7)
    files = sorted(
        p
        for p in FIXTURES.rglob("*")
        if p.suffix in (".tf", ".yaml", ".json") and "bad" not in p.parts
    )
    values = {
        ".tf": ['"x"', "5", "true", "null", "[]", "{}", '["a", 1]', "{a = 1}", "var.nope", "f(1)"],
        ".yaml": ['"x"', "5", "true", "null", "[]", "{}", "[a, 1]", "{a: 1}"],
        ".json": ['"x"', "5", "true", "null", "[]", "{}"],
    }
    out = []
    for _ in range(count):
        source = rng.choice(files)
        lines = source.read_text().splitlines()
        separator = "=" if source.suffix == ".tf" else ":"
        candidates = [i for i, line in enumerate(lines) if separator in line]
        for index in rng.sample(candidates, min(3, len(candidates))):
            line = lines[index]
            cut = line.index(separator) + 1
            comma = "," if source.suffix == ".json" and line.rstrip().endswith(",") else ""
            lines[index] = line[:cut] + " " + rng.choice(values[source.suffix]) + comma
        out.append((source.name, "\n".join(lines) + "\n"))
    return out


def test_values_of_the_wrong_type_never_crash_the_scan(tmp_path: Path) -> None:
    for number, (name, text) in enumerate(_mutants(80)):
        directory = tmp_path / str(number)
        directory.mkdir()
        (directory / name).write_text(text)
        report = scan(directory)  # must not raise
        assert report.stats["files"] == 1
