"""Terraform end to end: multi-hop paths, modules, unknowns, public resources, near misses."""

from __future__ import annotations

from threatscan_support import rule_ids, scan_fixture

from mezzo.threatscan import hcl, terraform
from mezzo.threatscan.model import Unknown
from mezzo.threatscan.sources import SourceFile


def test_internet_facing_instance_whose_role_reads_a_bucket_is_one_multi_hop_path() -> None:
    report = scan_fixture("terraform/internet-to-datastore")
    assert rule_ids(report) == ["MZ-PATH-002"]
    path = report.findings[0]
    assert [s.node for s in path.steps] == [
        "internet",
        "tf:aws_instance.web",
        "tf:aws_iam_role.web",
        "tf:aws_s3_bucket.data",
    ]
    # the open ingress rule, the instance profile, the policy statement, the bucket
    assert [s.location.line for s in path.steps] == [4, 17, 45, 52]  # type: ignore[union-attr]


def test_private_security_group_breaks_the_path() -> None:
    assert scan_fixture("terraform/internet-to-datastore-negative").findings == []


def test_quick_depth_reports_no_paths() -> None:
    report = scan_fixture("terraform/internet-to-datastore", depth="quick")
    assert report.findings == []


def test_load_balancer_to_admin_through_a_local_module() -> None:
    report = scan_fixture("terraform/lb-to-admin")
    assert rule_ids(report) == ["MZ-PATH-001"]
    steps = report.findings[0].steps
    assert [s.node for s in steps] == [
        "internet",
        "tf:aws_lb.front",
        "tf:aws_instance.app",
        "tf:module.app_role.aws_iam_role.this",  # an instance of the module, as Terraform names it
        "aws:admin",
    ]
    assert steps[3].location.path == "modules/app_role/main.tf"  # type: ignore[union-attr]


def test_public_resources_and_their_near_misses() -> None:
    positive = scan_fixture("terraform/public/positive")
    assert sorted(set(rule_ids(positive))) == [
        "MZ-AWS-001",
        "MZ-AWS-002",
        "MZ-AWS-003",
        "MZ-AWS-005",
        "MZ-AWS-006",
    ]
    assert rule_ids(positive).count("MZ-AWS-002") == 2
    assert scan_fixture("terraform/public/negative").findings == []


def test_running_code_on_workloads_reaches_admin_and_deny_or_mfa_stop_it() -> None:
    positive = scan_fixture("terraform/workload-control/positive")
    assert rule_ids(positive) == ["MZ-PATH-005"] * 4  # dev, ops, oncall to admin; dev to a secret
    assert [f.severity.label for f in positive.findings] == ["high"] * 3 + ["medium"]
    assert positive.findings[-1].nodes[-1] == "tf:aws_secretsmanager_secret.db"
    edges = {(e.source, e.technique) for e in positive.graph.edges.values()}  # type: ignore[union-attr]
    assert {
        ("tf:aws_iam_user.dev", "ssm:SendCommand"),
        ("tf:aws_iam_user.dev", "lambda:UpdateFunctionCode"),
        ("tf:aws_iam_user.ops", "ec2-instance-connect:SendSSHPublicKey"),
        ("tf:aws_iam_user.oncall", "ssm:StartSession"),
    } <= edges
    negative = scan_fixture("terraform/workload-control/negative")
    assert negative.findings == []
    kinds = {e.kind for e in negative.graph.edges.values()}  # type: ignore[union-attr]
    assert "can_exec" not in kinds


def test_unknown_values_are_reported_as_unknown_naming_the_variable() -> None:
    report = scan_fixture("terraform/unknowns")
    assert rule_ids(report) == ["MZ-PATH-002"]
    (path,) = report.findings
    # `${var.bucket_arn}/*` names one bucket we cannot see: maybe `reports`, not "every bucket"
    assert path.steps[-1].node == "tf:aws_s3_bucket.reports"
    assert path.severity.label == "low"
    assert "depends on var.ingress_cidr, var.bucket_arn" in path.message


def test_kubernetes_service_account_reaches_aws_secret_through_irsa() -> None:
    report = scan_fixture("mixed/irsa")
    assert rule_ids(report) == ["MZ-PATH-003"]
    steps = report.findings[0].steps
    assert [s.location.path for s in steps[:-1]] == [  # type: ignore[union-attr]
        "cluster.yaml",
        "cluster.yaml",
        "cluster.yaml",
        "cluster.yaml",
        "aws.tf",
    ]
    assert steps[-1].node == "tf:aws_secretsmanager_secret.stripe"


def _load(text: str) -> list[terraform.TfResource]:
    resources, skipped = terraform.load([SourceFile("main.tf", "terraform", text)])
    assert skipped == []
    return resources


def test_evaluator_resolves_locals_variables_functions_and_keeps_lines() -> None:
    resources = _load(
        'variable "env" {\n  default = "prod"\n}\n'
        'locals {\n  prefix = "app-${var.env}"\n}\n'
        'resource "aws_s3_bucket" "b" {\n'
        '  bucket = "${local.prefix}-data"\n'
        '  tags   = merge({a = 1}, {b = lower("X")})\n'
        '  list   = concat(["x"], [var.missing])\n'
        "}\n"
    )
    (bucket,) = resources
    assert bucket.values["bucket"] == "app-prod-data"
    assert bucket.values["tags"] == {"a": 1, "b": "x"}
    assert bucket.values["list"] == ["x", Unknown("var.missing", ("var.missing",))]
    assert bucket.location.line == 7
    assert bucket.values.line_of("tags") == 9


def test_policy_document_data_source_and_heredoc_policies() -> None:
    resources = _load(
        'data "aws_iam_policy_document" "d" {\n'
        "  statement {\n"
        '    actions   = ["s3:GetObject"]\n'
        '    resources = ["arn:aws:s3:::b/*"]\n'
        "    condition {\n"
        '      test     = "Bool"\n'
        '      variable = "aws:SecureTransport"\n'
        '      values   = ["true"]\n'
        "    }\n"
        "  }\n"
        "}\n"
        'resource "aws_iam_policy" "p" {\n'
        "  policy = <<EOF\n"
        '{"Statement": [{"Effect": "Deny", "Action": "*", "Resource": "${aws_s3_bucket.x.arn}"}]}\n'
        "EOF\n"
        "}\n"
        'resource "aws_s3_bucket" "x" {\n  bucket = "xb"\n}\n'
    )
    document = next(r for r in resources if r.mode == "data").values["json"]
    statement = document["Statement"][0]
    assert statement["Action"] == ["s3:GetObject"]
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": ["true"]}}
    assert statement.line == 2
    policy = next(r for r in resources if r.type == "aws_iam_policy").values["policy"]
    assert '"Resource": "arn:aws:s3:::xb"' in policy


def test_hcl_parse_errors_name_the_problem() -> None:
    try:
        hcl.parse('resource "x" {')
    except hcl.HclError as exc:
        assert str(exc)
    else:
        raise AssertionError("expected HclError")
