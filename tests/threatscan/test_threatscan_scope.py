"""What is analysed together: root modules stay apart, module instances are Terraform's, and an
entry the walk cannot examine is skipped with a note while the scan goes on."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from threatscan_support import FIXTURES, rule_ids

from mezzo.threatscan.analyze import Report, scan
from mezzo.threatscan.model import Finding, Location

MULTIROOT = FIXTURES / "multiroot"
SCENARIOS = sorted(p.name for p in MULTIROOT.iterdir() if p.is_dir())


def _where(location: Location | None, folder: str) -> tuple[str, int] | None:
    if location is None:
        return None
    return location.path.removeprefix(f"{folder}/"), location.line


def _portable(finding: Finding, folder: str) -> tuple[object, ...]:
    """A finding with paths made relative to its scenario folder (node ids are not compared)."""
    return (
        finding.rule.id,
        finding.severity.label,
        finding.message,
        _where(finding.location, folder),
        tuple((s.label, s.action, _where(s.location, folder)) for s in finding.steps),
    )


def _in_folder(report: Report, folder: str) -> list[tuple[object, ...]]:
    return sorted(
        _portable(f, folder)
        for f in report.findings
        if f.location is not None and f.location.path.startswith(f"{folder}/")
    )


def test_each_scenario_folder_gets_from_a_root_scan_what_it_gets_alone() -> None:
    whole = scan(MULTIROOT)
    assert len(SCENARIOS) == 5
    for folder in SCENARIOS:
        alone = scan(MULTIROOT / folder)
        assert alone.findings, f"{folder}: the fixture should have findings"
        expected = sorted(_portable(f, "") for f in alone.findings)
        assert _in_folder(whole, folder) == expected, folder
    assert len(whole.findings) == sum(len(scan(MULTIROOT / f).findings) for f in SCENARIOS)


def test_a_same_named_profile_in_another_root_module_is_not_bound() -> None:
    report = scan(MULTIROOT)
    graph = report.graph
    assert graph is not None
    profile_edges = {
        (e.source, e.target) for e in graph.edges.values() if e.technique == "workload-role"
    }
    assert ("tf:public-web/aws_instance.web", "tf:public-web/aws_iam_role.app") in profile_edges
    assert ("tf:public-web/aws_instance.web", "tf:private-admin/aws_iam_role.app") not in (
        profile_edges
    )
    # the public web server never reaches the other deployment's administrator role
    assert not [
        f
        for f in report.findings
        if f.steps and f.steps[0].node == "internet" and "private-admin" in "".join(f.nodes)
    ]


def test_a_module_called_twice_is_two_instances_read_through_its_outputs() -> None:
    report = scan(MULTIROOT / "modules-twice")
    graph = report.graph
    assert graph is not None
    runs_as = {e.source: e.target for e in graph.edges.values() if e.kind == "runs_as"}
    assert runs_as == {
        "tf:aws_instance.frontend": "tf:module.frontend.aws_iam_role.this",
        "tf:aws_instance.worker": "tf:module.worker.aws_iam_role.this",
    }
    # only the worker's instance is administrator; the public frontend reads buckets
    (path,) = [f for f in report.findings if f.rule.id.startswith("MZ-PATH")]
    assert path.rule.id == "MZ-PATH-002"
    assert path.nodes[-2:] == ("tf:module.frontend.aws_iam_role.this", "aws:any-s3-bucket")


def test_two_buckets_with_the_same_prefix_are_two_buckets() -> None:
    report = scan(MULTIROOT / "public-web")
    graph = report.graph
    assert graph is not None
    reads = [e for e in graph.edges.values() if e.kind == "can_read"]
    assert [(e.source, e.target) for e in reads] == [
        ("tf:aws_iam_role.app", "tf:aws_s3_bucket.site")
    ]
    assert graph.nodes["tf:aws_s3_bucket.site"].label == "S3 bucket logs-{site}"


@pytest.mark.timeout(30)
def test_symlink_loops_and_unreadable_entries_are_skipped_and_the_scan_goes_on(
    tmp_path: Path,
) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "self").symlink_to(root / "self")  # points at itself: stat() fails with ELOOP
    (root / "ping").symlink_to(root / "pong")
    (root / "pong").symlink_to(root / "ping")
    (root / "app").mkdir()
    (root / "app" / "back").symlink_to(root / "app" / "back")
    (root / "app" / "pod.yaml").write_text((FIXTURES / "bad" / "ok.yaml").read_text())
    report = scan(root)
    assert rule_ids(report) == ["MZ-K8S-001"]
    reasons = {s.path: s.reason for s in report.skipped}
    for name in ("self", "ping", "pong", "app/back"):
        assert reasons[name].startswith("not scanned:"), reasons
        assert "symbolic links" in reasons[name] or "loop" in reasons[name].lower()


def test_a_symlink_loop_does_not_abort_the_cli(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from mezzo.cli import app

    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    (tmp_path / "main.tf").write_text('resource "aws_s3_bucket" "b" {\n  acl = "public-read"\n}\n')
    result = CliRunner().invoke(app, ["scan", "analyze", "--target", str(tmp_path), "-f", "sarif"])
    assert result.exit_code == 0, result.output
    assert '"ruleId": "MZ-AWS-002"' in result.stdout
    assert "not scanned" in result.stdout  # a toolExecutionNotification for the loop


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads directories whatever their mode")
def test_an_unreadable_directory_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "locked").mkdir()
    (tmp_path / "locked").chmod(0)
    try:
        report = scan(tmp_path)
    finally:
        (tmp_path / "locked").chmod(0o755)
    assert [s.path for s in report.skipped] == ["locked"]


def test_two_account_dumps_are_two_accounts(tmp_path: Path) -> None:
    import json

    def dump(account: str, user: str, statement: dict[str, str]) -> dict[str, object]:
        return {
            "UserDetailList": [
                {
                    "UserName": user,
                    "Arn": f"arn:aws:iam::{account}:user/{user}",
                    "GroupList": [],
                    "UserPolicyList": [
                        {"PolicyName": "p", "PolicyDocument": {"Statement": [statement]}}
                    ],
                    "AttachedManagedPolicies": [],
                }
            ],
            "RoleDetailList": [],
            "GroupDetailList": [],
            "Policies": [],
        }

    everything = {"Effect": "Allow", "Action": "*", "Resource": "*"}
    mint = {"Effect": "Allow", "Action": "iam:CreateAccessKey", "Resource": "*"}
    (tmp_path / "a.json").write_text(json.dumps(dump("111111111111", "admin", everything)))
    (tmp_path / "b.json").write_text(json.dumps(dump("222222222222", "intern", mint)))
    report = scan(tmp_path)
    graph = report.graph
    assert graph is not None
    # the intern of account B cannot mint keys for the admin of account A
    assert not [e for e in graph.edges.values() if e.technique == "iam:CreateAccessKey"]
