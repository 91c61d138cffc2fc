"""IAM JSON files: single policy documents and `aws iam get-account-authorization-details` output.

A standalone identity policy is modelled as a role named after the file (its holder is unknown);
a trust policy or resource policy is checked for public principals; an authorization-details
dump yields the account's real users, groups, roles and managed policies.
"""

from __future__ import annotations

import posixpath
from typing import Any
from urllib.parse import unquote

from mezzo.threatscan.aws_managed import managed_policy
from mezzo.threatscan.graph import INTERNET, Graph
from mezzo.threatscan.iam import (
    ACCOUNT,
    ATTACKER_CONTEXT,
    Policy,
    PolicyError,
    condition_result,
    is_public_principal,
    parse_policy_document,
)
from mezzo.threatscan.model import Edge, Finding, LineDict, Location, Node, NodeKind, Skipped
from mezzo.threatscan.parsing import Unparseable
from mezzo.threatscan.privesc import Principal
from mezzo.threatscan.rules import finding
from mezzo.threatscan.sources import SourceFile


def json_documents(
    sources: list[SourceFile], parsed: dict[str, Any]
) -> tuple[dict[str, list[Any]], list[Skipped]]:
    """The documents of every .json file (parsed once, by `parsing`), and the unparseable ones."""
    documents: dict[str, list[Any]] = {}
    skipped: list[Skipped] = []
    for source in sources:
        if source.language != "json" or source.path.endswith(".tfvars.json"):
            continue
        result = parsed.get(source.path)
        if isinstance(result, Unparseable):
            skipped.append(Skipped(source.path, result.reason))
        elif isinstance(result, list):
            documents[source.path] = result
    return documents, skipped


def build(
    documents: dict[str, list[Any]], graph: Graph
) -> tuple[list[Principal], list[Finding], list[str]]:
    principals: list[Principal] = []
    findings: list[Finding] = []
    notes: list[str] = []
    for path in sorted(documents):
        for document in documents[path]:
            if not isinstance(document, LineDict):
                continue
            if "RoleDetailList" in document or "UserDetailList" in document:
                principals += _authorization_details(document, path, notes)
            elif "Statement" in document:
                _policy_file(document, path, principals, findings, graph, notes)
    return principals, findings, notes


def _policy_file(
    document: LineDict,
    path: str,
    principals: list[Principal],
    findings: list[Finding],
    graph: Graph,
    notes: list[str],
) -> None:
    try:
        policy = parse_policy_document(document, path, Location(path, document.line))
    except PolicyError as exc:
        notes.append(f"{path}: {exc}")
        return
    stem = posixpath.splitext(posixpath.basename(path))[0]
    with_principal = [s for s in policy.statements if s.principals is not None]
    if not with_principal:
        principal = Principal(
            f"iam:{path}",
            "role",
            f"holder-of-{stem}",
            f"arn:aws:iam::{ACCOUNT}:role/holder-of-{stem}",
            Location(path, document.line),
            [policy],
        )
        principals.append(principal)
        return
    for statement in with_principal:
        if statement.effect != "Allow" or not is_public_principal(statement):
            continue
        if condition_result(statement.conditions, ATTACKER_CONTEXT) is False:
            continue
        actions = ", ".join(statement.actions or ("NotAction …",))
        location = statement.location or Location(path, document.line)
        if any(a.lower().startswith("sts:assumerole") for a in statement.actions or ()):
            node_id = f"iam:{path}"
            graph.add_node(Node(node_id, NodeKind.IDENTITY, f"role trusted by {stem}", location))
            graph.add_edge(
                Edge(
                    INTERNET,
                    node_id,
                    "can_assume",
                    "public-trust-policy",
                    f"assumes the role from any AWS account ({actions})",
                    location,
                )
            )
            findings.append(
                finding(
                    "MZ-AWS-005",
                    f"Trust policy {path} admits any AWS principal",
                    location,
                    (node_id,),
                )
            )
        elif any(a.lower().startswith(("s3:get", "s3:*", "*")) for a in statement.actions or ()):
            findings.append(
                finding(
                    "MZ-AWS-002",
                    f"Resource policy {path} grants {actions} to Principal *",
                    location,
                    (f"iam:{path}",),
                )
            )


def _document(value: Any, name: str, location: Location) -> Policy | None:
    if isinstance(value, str):
        value = unquote(value)
    try:
        return parse_policy_document(value, name, location)
    except PolicyError:
        return None


def _authorization_details(document: LineDict, path: str, notes: list[str]) -> list[Principal]:
    managed: dict[str, Policy] = {}
    for item in _entries(document.get("Policies")):
        for version in _entries(item.get("PolicyVersionList")):
            if version.get("IsDefaultVersion") is True:
                policy = _document(
                    version.get("Document"),
                    str(item.get("PolicyName")),
                    Location(path, version.line),
                )
                if policy:
                    managed[str(item.get("Arn"))] = policy

    def attach(principal: Principal, entry: LineDict) -> None:
        for attached in _entries(entry.get("AttachedManagedPolicies")):
            arn = str(attached.get("PolicyArn", ""))
            policy = managed.get(arn)
            if policy is None and (doc := managed_policy(arn)) is not None:
                policy = parse_policy_document(doc, arn, Location(path, attached.line))
            if policy is None:
                notes.append(f"{path}: managed policy {arn} is not in the file")
                continue
            principal.policies.append(policy)
            principal.attached_policy_arns.append(arn)
        limit = entry.get("PermissionsBoundary")
        boundary = limit.get("PermissionsBoundaryArn") if isinstance(limit, dict) else None
        if isinstance(boundary, str) and boundary in managed:
            principal.boundary = list(managed[boundary].statements)

    principals: list[Principal] = []
    groups: dict[str, Principal] = {}
    for kind, list_key, name_key, inline_key in (
        ("group", "GroupDetailList", "GroupName", "GroupPolicyList"),
        ("role", "RoleDetailList", "RoleName", "RolePolicyList"),
        ("user", "UserDetailList", "UserName", "UserPolicyList"),
    ):
        for entry in _entries(document.get(list_key)):
            name = str(entry.get(name_key))
            where = Location(path, entry.line)
            principal = Principal(
                f"iam:{path}#{kind}/{name}",
                kind,
                name,
                str(entry.get("Arn") or f"arn:aws:iam::{ACCOUNT}:{kind}/{name}"),
                where,
            )
            for inline in _entries(entry.get(inline_key)):
                policy = _document(
                    inline.get("PolicyDocument"),
                    str(inline.get("PolicyName")),
                    Location(path, inline.line),
                )
                if policy:
                    principal.policies.append(policy)
            attach(principal, entry)
            if kind == "role":
                trust = _document(entry.get("AssumeRolePolicyDocument"), "trust", where)
                principal.trust = list(trust.statements) if trust else []
            if kind == "group":
                groups[name] = principal
            if kind == "user":
                for group_name in _list(entry.get("GroupList")):
                    group = groups.get(str(group_name))
                    if group:
                        principal.group_arns.append(group.arn)
                        principal.group_ids.append(group.node_id)
                        principal.policies.extend(group.policies)
                        principal.attached_policy_arns.extend(group.attached_policy_arns)
            principals.append(principal)
    return principals


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _entries(value: Any) -> list[LineDict]:
    return [item for item in _list(value) if isinstance(item, LineDict)]
