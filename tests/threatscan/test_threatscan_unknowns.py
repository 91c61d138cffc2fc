"""Three states, never two: known, unknown (naming the variable), any. tfvars are evaluated."""

from __future__ import annotations

from pathlib import Path

from threatscan_support import scan_fixture

from mezzo.threatscan.analyze import scan


def test_tfvars_and_auto_tfvars_resolve_variables_in_terraform_order() -> None:
    report = scan_fixture("terraform/tfvars")
    graph = report.graph
    assert graph is not None
    labels = {n.label for n in graph.nodes.values()}
    # the bucket named by invoices.auto.tfvars is read; no "every bucket", not the other one
    reads = {(e.source, e.target) for e in graph.edges.values() if e.kind == "can_read"}
    assert reads == {("tf:aws_iam_role.partner", "tf:aws_s3_bucket.invoices")}
    assert "every S3 bucket in the account" not in labels
    # the admin CIDR from terraform.tfvars is private: no open-port finding for the bastion
    messages = [f.message for f in report.findings]
    assert not [m for m in messages if "bastion" in m]


def test_unresolved_cidr_and_trust_principal_are_low_and_name_the_variable() -> None:
    report = scan_fixture("terraform/tfvars")
    found = {(f.rule.id, f.severity.label, f.message) for f in report.findings}
    assert found == {
        (
            "MZ-PATH-002",
            "low",
            "the internet reaches S3 bucket invoices in 2 steps: the internet -> IAM role partner"
            " -> S3 bucket invoices (depends on var.trusted_principal: not resolvable offline)",
        ),
        (
            "MZ-AWS-001",
            "low",
            "Security group office opens an administrative port to a source that cannot be "
            "resolved (depends on var.office_cidr: not resolvable offline)",
        ),
        (
            "MZ-AWS-005",
            "low",
            "Role partner trusts a principal that cannot be resolved offline "
            "(depends on var.trusted_principal: not resolvable offline)",
        ),
    }


def test_auto_tfvars_override_terraform_tfvars_in_name_order(tmp_path: Path) -> None:
    (tmp_path / "main.tf").write_text(
        'variable "cidr" { default = "10.0.0.0/8" }\n'
        'resource "aws_security_group" "g" {\n'
        '  name = "g"\n'
        "  ingress {\n"
        "    from_port   = 22\n"
        "    to_port     = 22\n"
        '    protocol    = "tcp"\n'
        "    cidr_blocks = [var.cidr]\n"
        "  }\n"
        "}\n"
    )
    assert scan(tmp_path).findings == []
    (tmp_path / "terraform.tfvars").write_text('cidr = "10.1.0.0/16"\n')
    (tmp_path / "a.auto.tfvars").write_text('cidr = "0.0.0.0/0"\n')
    (tmp_path / "b.auto.tfvars").write_text('cidr = "192.168.0.0/16"\n')
    assert scan(tmp_path).findings == []  # b wins over a
    (tmp_path / "c.auto.tfvars.json").write_text('{"cidr": "0.0.0.0/0"}')
    report = scan(tmp_path)
    assert [(f.rule.id, f.severity.label) for f in report.findings] == [("MZ-AWS-001", "medium")]
    # a module's variables come from its caller, never from the root's tfvars
    (tmp_path / "mod").mkdir()
    (tmp_path / "mod" / "main.tf").write_text((tmp_path / "main.tf").read_text())
    (tmp_path / "mod" / "terraform.tfvars").write_text('cidr = "0.0.0.0/0"\n')
    (tmp_path / "main.tf").write_text(
        (tmp_path / "main.tf").read_text()
        + 'module "m" {\n  source = "./mod"\n  cidr   = "10.9.0.0/16"\n}\n'
    )
    assert len(scan(tmp_path).findings) == 1


def test_an_unresolved_policy_resource_is_not_every_resource(tmp_path: Path) -> None:
    (tmp_path / "main.tf").write_text(
        'variable "prefix" {}\n'
        'resource "aws_iam_user" "u" {\n  name = "u"\n}\n'
        'resource "aws_iam_user_policy" "p" {\n'
        "  user = aws_iam_user.u.name\n"
        "  policy = jsonencode({\n"
        '    Version = "2012-10-17"\n'
        "    Statement = [\n"
        '      { Effect = "Allow", Action = "s3:GetObject",\n'
        '        Resource = "arn:aws:s3:::${var.prefix}-logs/*" },\n'
        '      { Effect = "Allow", Action = "iam:AttachUserPolicy", Resource = "${var.prefix}" },\n'
        "    ]\n"
        "  })\n"
        "}\n"
        'resource "aws_s3_bucket" "logs" {\n  bucket = "prod-logs"\n}\n'
        'resource "aws_s3_bucket" "api" {\n  bucket = "api"\n}\n'
    )
    report = scan(tmp_path)
    graph = report.graph
    assert graph is not None
    edges = {(e.target, e.depends) for e in graph.edges.values()}
    # `${var.prefix}-logs` may be prod-logs, cannot be "api", and is not every bucket
    assert ("tf:aws_s3_bucket.logs", ("var.prefix",)) in edges
    assert not [t for t, _ in edges if t in ("aws:any-s3-bucket", "tf:aws_s3_bucket.api")]
    # self-escalation through an unresolved resource is reported, low, naming the variable
    (escalation,) = [f for f in report.findings if f.rule.id == "MZ-AWS-004"]
    assert escalation.severity.label == "low" and "var.prefix" in escalation.message
