"""Precision: protocols and ports, AWS-managed ARNs, date/numeric conditions, MFA keys that are
absent from long-term credentials, prefixes."""

from __future__ import annotations

from typing import Any

from threatscan_support import scan_fixture

from mezzo.threatscan.iam import (
    ATTACKER_CONTEXT,
    MFA_KEY,
    Context,
    evaluate,
    parse_policy_document,
)
from mezzo.threatscan.model import NodeKind

ANY = "arn:aws:s3:::bucket/key"
USER_KEYS = ATTACKER_CONTEXT.without(MFA_KEY)  # stolen long-term access keys


def decide(statement: dict[str, Any], context: Any = ATTACKER_CONTEXT) -> bool:
    policy = parse_policy_document({"Statement": [statement]}, "p", None)
    return evaluate(policy.statements, "s3:GetObject", ANY, context).allowed


def test_icmp_and_udp_rules_are_not_open_admin_ports_nor_an_entry() -> None:
    report = scan_fixture("terraform/precision")
    assert [f.rule.id for f in report.findings] == []
    graph = report.graph
    assert graph is not None
    assert not [e for e in graph.edges.values() if e.source == "internet"]


def test_an_aws_managed_arn_never_resolves_to_a_customer_policy_of_that_name() -> None:
    report = scan_fixture("terraform/precision")
    graph = report.graph
    assert graph is not None
    admin = [e for e in graph.edges.values() if graph.nodes[e.target].kind == NodeKind.ADMIN]
    assert admin == []  # neither the customer "AdministratorAccess" nor "ReadOnlyAccess" is */*
    reads = {e.target for e in graph.edges.values() if e.kind == "can_read"}
    assert reads == {"aws:any-s3-bucket", "aws:any-dynamodb-table", "aws:any-ssm-parameter"}


def test_an_expired_allow_grants_nothing() -> None:
    report = scan_fixture("terraform/precision")
    techniques = {e.technique for e in report.graph.edges.values()}  # type: ignore[union-attr]
    assert "iam:AttachUserPolicy" not in techniques


def test_date_conditions_are_evaluated_against_today() -> None:
    def window(operator: str, when: str) -> dict[str, Any]:
        return {
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": "*",
            "Condition": {operator: {"aws:CurrentTime": when}},
        }

    assert not decide(window("DateLessThan", "2020-01-01T00:00:00Z"))
    assert decide(window("DateLessThan", "2999-01-01T00:00:00Z"))
    assert decide(window("DateGreaterThan", "2020-01-01"))
    assert not decide(window("DateGreaterThanEquals", "2999-01-01"))
    assert decide(window("DateLessThan", "32503680000"))  # epoch seconds, year 3000
    # a Deny that is certainly in force wins
    deny = parse_policy_document(
        {
            "Statement": [
                {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
                {
                    "Effect": "Deny",
                    "Action": "s3:*",
                    "Resource": "*",
                    "Condition": {"DateLessThan": {"aws:EpochTime": "32503680000"}},
                },
            ]
        },
        "p",
        None,
    )
    assert not evaluate(deny.statements, "s3:GetObject", ANY).allowed


def test_numeric_conditions_on_literal_values() -> None:
    mfa_age = {
        "Effect": "Allow",
        "Action": "s3:GetObject",
        "Resource": "*",
        "Condition": {"NumericLessThan": {"aws:MultiFactorAuthAge": "3600"}},
    }
    assert not decide(mfa_age)  # no MFA session: the age key is absent
    known = Context({**ATTACKER_CONTEXT.values, "s3:max-keys": ("50",)})
    statement = {
        "Effect": "Allow",
        "Action": "s3:GetObject",
        "Resource": "*",
        "Condition": {"NumericLessThanEquals": {"s3:max-keys": "100"}},
    }
    assert decide(statement, known)
    statement["Condition"] = {"NumericGreaterThan": {"s3:max-keys": "100"}}
    assert not decide(statement, known)


def test_bool_if_exists_on_mfa_is_satisfied_by_long_term_keys() -> None:
    allow_if_exists = {
        "Effect": "Allow",
        "Action": "s3:GetObject",
        "Resource": "*",
        "Condition": {"BoolIfExists": {"aws:MultiFactorAuthPresent": "true"}},
    }
    assert decide(allow_if_exists, USER_KEYS)  # the real-world hole: no key, IfExists holds
    assert not decide(allow_if_exists, ATTACKER_CONTEXT)  # a role session carries "false"
    allow_bool = dict(allow_if_exists, Condition={"Bool": {"aws:MultiFactorAuthPresent": "true"}})
    assert not decide(allow_bool, USER_KEYS)


def test_a_deny_on_bool_mfa_false_does_not_stop_long_term_keys() -> None:
    def with_deny(operator: str) -> list[Any]:
        return list(
            parse_policy_document(
                {
                    "Statement": [
                        {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
                        {
                            "Effect": "Deny",
                            "NotAction": "iam:*",
                            "Resource": "*",
                            "Condition": {operator: {"aws:MultiFactorAuthPresent": "false"}},
                        },
                    ]
                },
                "p",
                None,
            ).statements
        )

    # AWS docs ("aws:MultiFactorAuthPresent"): use BoolIfExists in the Deny, not Bool
    assert evaluate(with_deny("Bool"), "s3:GetObject", ANY, USER_KEYS).allowed
    assert not evaluate(with_deny("BoolIfExists"), "s3:GetObject", ANY, USER_KEYS).allowed
    assert not evaluate(with_deny("Bool"), "s3:GetObject", ANY, ATTACKER_CONTEXT).allowed
