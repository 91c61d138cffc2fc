"""Every published AWS escalation technique: a positive case finds the named edge, the near-miss
negative (Deny, resource constraint, condition, NotAction, boundary, trust) does not."""

from __future__ import annotations

import json

import pytest
from threatscan_support import FIXTURES, scan_fixture

from mezzo.threatscan.privesc import ADMIN_NODE

CASES = json.loads((FIXTURES / "privesc" / "cases.json").read_text())


def _edges(report, expect):  # type: ignore[no-untyped-def]
    graph = report.graph
    found = []
    for edge in graph.edges.values():
        source = graph.nodes[edge.source].label.split()[-1]
        target = (
            "ADMIN" if edge.target == ADMIN_NODE else graph.nodes[edge.target].label.split()[-1]
        )
        if (source, target, edge.technique) == (
            expect["source"],
            expect["target"],
            expect["technique"],
        ):
            found.append(edge)
    return found


@pytest.mark.parametrize("name", sorted(CASES))
def test_positive_case_has_the_named_edge(name: str) -> None:
    report = scan_fixture(f"privesc/{name}.positive.json")
    assert report.skipped == []
    edges = _edges(report, CASES[name])
    assert len(edges) == 1, f"{name}: expected edge {CASES[name]}"
    edge = edges[0]
    assert edge.location is not None and edge.location.path == f"{name}.positive.json"
    assert edge.location.line > 1


@pytest.mark.parametrize("name", sorted(CASES))
def test_near_miss_case_has_no_edge(name: str) -> None:
    report = scan_fixture(f"privesc/{name}.negative.json")
    assert report.skipped == []
    labels = {node.label for node in report.graph.nodes.values()}  # type: ignore[union-attr]
    assert any(label.endswith(" " + CASES[name]["source"]) for label in labels)
    assert _edges(report, CASES[name]) == []


def test_self_escalation_is_reported_as_a_finding_with_the_policy_line() -> None:
    report = scan_fixture("privesc/put-user-policy.positive.json")
    findings = [f for f in report.findings if f.rule.id == "MZ-AWS-004"]
    assert len(findings) == 1
    assert "iam:PutUserPolicy" in findings[0].message
    document = (FIXTURES / "privesc" / "put-user-policy.positive.json").read_text().splitlines()
    assert '"Effect": "Allow"' in document[findings[0].location.line - 1]  # type: ignore[union-attr]


def test_passrole_alone_is_not_a_finding(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from mezzo.threatscan.analyze import scan

    document = {
        "UserDetailList": [
            {
                "UserName": "ci",
                "Arn": "arn:aws:iam::1:user/ci",
                "GroupList": [],
                "UserPolicyList": [
                    {
                        "PolicyName": "p",
                        "PolicyDocument": {
                            "Statement": [
                                {"Effect": "Allow", "Action": "iam:PassRole", "Resource": "*"}
                            ]
                        },
                    }
                ],
                "AttachedManagedPolicies": [],
            }
        ],
        "RoleDetailList": [
            {
                "RoleName": "admin",
                "Arn": "arn:aws:iam::1:role/admin",
                "AssumeRolePolicyDocument": {
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "ec2.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ]
                },
                "RolePolicyList": [],
                "AttachedManagedPolicies": [
                    {"PolicyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}
                ],
            }
        ],
        "GroupDetailList": [],
        "Policies": [],
    }
    (tmp_path / "account.json").write_text(json.dumps(document))
    report = scan(tmp_path)
    techniques = {e.technique for e in report.graph.edges.values()}  # type: ignore[union-attr]
    assert not any(t.startswith("iam:PassRole") for t in techniques)
    assert report.findings == []
