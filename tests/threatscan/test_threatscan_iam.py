"""IAM evaluation: Deny > Allow, wildcards, NotAction/NotResource, conditions, boundaries."""

from __future__ import annotations

from typing import Any

from mezzo.threatscan.iam import (
    ATTACKER_CONTEXT,
    Statement,
    arn_matches,
    evaluate,
    parse_policy_document,
    trusted_services,
)
from mezzo.threatscan.model import Location, Unknown
from mezzo.threatscan.yamlload import load_documents


def statements(*items: dict[str, Any]) -> list[Statement]:
    return list(parse_policy_document({"Statement": list(items)}, "test", None).statements)


BUCKET = "arn:aws:s3:::data/report.csv"


def test_explicit_deny_beats_allow() -> None:
    policy = statements(
        {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::data/*"},
    )
    assert not evaluate(policy, "s3:GetObject", BUCKET).allowed
    assert evaluate(policy, "s3:GetObject", "arn:aws:s3:::other/x").allowed
    assert evaluate(policy, "s3:PutObject", BUCKET).allowed


def test_action_wildcards_are_case_insensitive_and_resources_are_not() -> None:
    policy = statements({"Effect": "Allow", "Action": "S3:Get*", "Resource": "arn:aws:s3:::Data/*"})
    assert evaluate(policy, "s3:GetObject", "arn:aws:s3:::Data/x").allowed
    assert not evaluate(policy, "s3:GetObject", "arn:aws:s3:::data/x").allowed
    assert not evaluate(policy, "s3:PutObject", "arn:aws:s3:::Data/x").allowed


def test_not_action_and_not_resource() -> None:
    policy = statements({"Effect": "Allow", "NotAction": ["iam:*"], "NotResource": BUCKET})
    assert evaluate(policy, "ec2:RunInstances", "arn:aws:ec2:x").allowed
    assert not evaluate(policy, "iam:CreateUser", "arn:aws:iam::1:user/x").allowed
    assert not evaluate(policy, "s3:GetObject", BUCKET).allowed


def test_conditions_an_attacker_cannot_meet_block_the_allow() -> None:
    policy = statements(
        {
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": "*",
            "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}},
        },
    )
    assert not evaluate(policy, "s3:GetObject", BUCKET).allowed
    org = statements(
        {
            "Effect": "Allow",
            "Action": "s3:*",
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:PrincipalOrgID": "o-1"}},
        }
    )
    assert not evaluate(org, "s3:GetObject", BUCKET).allowed


def test_conditions_that_cannot_be_checked_offline_still_grant_but_are_marked() -> None:
    policy = statements(
        {
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": "*",
            "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}},
        }
    )
    decision = evaluate(policy, "s3:GetObject", BUCKET)
    assert decision.allowed and decision.conditional
    deny = statements(
        {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
        {
            "Effect": "Deny",
            "Action": "s3:*",
            "Resource": "*",
            "Condition": {"StringNotEquals": {"aws:SourceVpce": "vpce-1"}},
        },
    )
    assert evaluate(deny, "s3:GetObject", BUCKET).allowed  # an unknowable Deny is not relied on


def test_if_exists_and_passed_to_service() -> None:
    policy = statements(
        {
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": "*",
            "Condition": {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}},
        }
    )
    lam = ATTACKER_CONTEXT.with_values(iam__PassedToService="lambda.amazonaws.com")
    ec2 = ATTACKER_CONTEXT.with_values(iam__PassedToService="ec2.amazonaws.com")
    assert evaluate(policy, "iam:PassRole", "arn:aws:iam::1:role/r", lam).allowed
    assert not evaluate(policy, "iam:PassRole", "arn:aws:iam::1:role/r", ec2).allowed


def test_permission_boundary_caps_the_identity_policy() -> None:
    policy = statements({"Effect": "Allow", "Action": "*", "Resource": "*"})
    boundary = statements({"Effect": "Allow", "Action": ["s3:Get*"], "Resource": "*"})
    assert evaluate(policy, "s3:GetObject", BUCKET, boundary=boundary).allowed
    decision = evaluate(policy, "iam:CreateUser", "arn:aws:iam::1:user/x", boundary=boundary)
    assert not decision.allowed and "boundary" in decision.reason


def test_unknown_resource_in_an_allow_matches_everything() -> None:
    policy = statements(
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": Unknown("var.bucket")}
    )
    assert evaluate(policy, "s3:GetObject", BUCKET).allowed


def test_policy_variables_are_substituted() -> None:
    policy = statements(
        {
            "Effect": "Allow",
            "Action": "iam:CreateAccessKey",
            "Resource": "arn:aws:iam::*:user/${aws:username}",
        }
    )
    me = ATTACKER_CONTEXT.with_values(aws__username="alice")
    assert evaluate(policy, "iam:CreateAccessKey", "arn:aws:iam::1:user/alice", me).allowed
    assert not evaluate(policy, "iam:CreateAccessKey", "arn:aws:iam::1:user/admin", me).allowed


def test_arn_placeholders_for_unknown_account_and_region() -> None:
    assert arn_matches("arn:aws:iam::111122223333:role/app", "arn:aws:iam::{account}:role/app")
    assert not arn_matches("arn:aws:iam::111122223333:role/app", "arn:aws:iam::{account}:role/db")
    assert arn_matches("arn:aws:s3:::b/*", "arn:aws:s3:::b/key/with:colon")


def test_trust_policy_services_minus_deny() -> None:
    trust = statements(
        {
            "Effect": "Allow",
            "Principal": {"Service": ["ec2.amazonaws.com", "lambda.amazonaws.com"]},
            "Action": "sts:AssumeRole",
        },
        {
            "Effect": "Deny",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
        },
    )
    assert trusted_services(trust) == {"ec2.amazonaws.com"}


def test_json_policy_statements_keep_their_lines() -> None:
    text = (
        '{\n  "Statement": [\n    {\n      "Effect": "Deny",\n      "Action": "*"\n    }\n  ]\n}\n'
    )
    (document,) = load_documents(text)
    policy = parse_policy_document(document, "p", Location("p.json", 1))
    assert policy.statements[0].effect == "Deny"
    assert policy.statements[0].location == Location("p.json", 4)


def test_yaml_loader_records_lines_for_every_mapping() -> None:
    first, second = load_documents("a: 1\nb:\n  c: [1, {x: 2}]\n---\nkind: Pod\n")
    assert first.key_lines == {"a": 1, "b": 2}
    assert first["b"].line == 3
    assert first["b"]["c"][1].line == 3
    assert second.line == 5
