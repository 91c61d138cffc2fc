"""Attack paths from every principal, compute identity and pod to every crown jewel."""

from __future__ import annotations

from threatscan_support import scan_fixture

from mezzo.threatscan.analyze import _finalize, _path_findings
from mezzo.threatscan.graph import Graph, shortest_paths
from mezzo.threatscan.model import Edge, Node, NodeKind


def test_paths_start_at_roles_users_and_compute_identities_and_end_at_every_jewel() -> None:
    report = scan_fixture("paths/every-principal")
    found = {(f.rule.id, f.nodes[0], f.nodes[-1], f.severity.label) for f in report.findings}
    assert found == {
        # a CodeBuild role passes a Lambda role: the API key and the KMS key
        ("MZ-PATH-005", "tf:aws_iam_role.ci", "tf:aws_secretsmanager_secret.api_key", "medium"),
        ("MZ-PATH-005", "tf:aws_iam_role.ci", "tf:aws_kms_key.app", "medium"),
        # a user mints the DBA's keys: the database (master password reset), a String parameter
        ("MZ-PATH-005", "tf:aws_iam_user.analyst", "tf:aws_db_instance.orders", "medium"),
        ("MZ-PATH-005", "tf:aws_iam_user.analyst", "tf:aws_ssm_parameter.db_password", "medium"),
        # a function's role replaces another function's code and takes its table
        ("MZ-PATH-005", "tf:aws_iam_role.worker", "tf:aws_dynamodb_table.cards", "medium"),
        # no jewel behind it, but the ops role may do what the CI role may not
        ("MZ-AWS-007", "tf:aws_iam_role.ci", "tf:aws_iam_role.ops", "medium"),
        # a password in a plain String parameter is a finding of its own
        (
            "MZ-AWS-008",
            "tf:aws_ssm_parameter.db_password",
            "tf:aws_ssm_parameter.db_password",
            "medium",
        ),
    }
    database = next(f for f in report.findings if f.nodes[-1] == "tf:aws_db_instance.orders")
    assert [s.technique for s in database.steps[:-1]] == [
        "iam:CreateAccessKey",
        "rds:ModifyDBInstance",
    ]


def test_direct_access_of_a_principal_to_its_own_data_is_not_an_attack_path() -> None:
    report = scan_fixture("paths/every-principal")
    graph = report.graph
    assert graph is not None
    # deployer reads the secret itself, payments scans its table: edges, never findings
    assert ("tf:aws_iam_role.deployer", "tf:aws_secretsmanager_secret.api_key") in {
        (e.source, e.target) for e in graph.edges.values()
    }
    starts = {f.nodes[0] for f in report.findings}
    assert not starts & {"tf:aws_iam_role.deployer", "tf:aws_iam_role.payments"}


def _graph(*edges: tuple[str, str, str, tuple[str, ...]]) -> Graph:
    graph = Graph()
    kinds = {"admin": NodeKind.ADMIN, "data": NodeKind.DATASTORE}
    for source, target, _, _ in edges:
        for node in (source, target):
            graph.add_node(Node(node, kinds.get(node, NodeKind.IDENTITY), node))
    for source, target, kind, depends in edges:
        graph.add_edge(Edge(source, target, kind, f"{source}->{target}", "acts", None, depends))
    return graph


def test_one_path_per_start_and_target_and_certain_paths_win_over_shorter_unknown_ones() -> None:
    graph = _graph(
        ("internet", "web", "exposes", ()),
        ("web", "data", "can_read", ("var.bucket",)),  # short, but depends on a variable
        ("web", "role", "runs_as", ()),
        ("role", "data", "can_read", ()),
        ("role", "admin", "administers", ()),
    )
    paths = shortest_paths(graph, ["internet"])
    assert [[e.target for e in p.edges] for p in paths] == [
        ["web", "role", "admin"],
        ["web", "role", "data"],
    ]


def test_findings_are_ranked_by_severity_then_length() -> None:
    graph = _graph(
        ("internet", "web", "exposes", ()),
        ("web", "role", "runs_as", ()),
        ("role", "data", "can_read", ()),
        ("web", "other", "runs_as", ("var.x",)),
        ("other", "admin", "administers", ()),
    )
    findings = _finalize(_path_findings(graph, [], []))
    assert [(f.rule.id, f.severity.label) for f in findings] == [
        ("MZ-PATH-002", "high"),
        ("MZ-PATH-001", "low"),  # to admin, but only if var.x allows it
    ]
    assert "depends on var.x" in findings[1].message
