"""AWS data stores: who can read them, and buckets anyone can read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mezzo.threatscan.aws_index import (
    AwsResult,
    ResourceIndex,
    arn_of,
    display_name,
    node_id,
    policy_attribute,
)
from mezzo.threatscan.graph import INTERNET, Graph
from mezzo.threatscan.iam import (
    ACCOUNT,
    ATTACKER_CONTEXT,
    REGION,
    condition_result,
    is_public_principal,
)
from mezzo.threatscan.model import Edge, Location, Node, NodeKind
from mezzo.threatscan.privesc import Principal, decision_edge
from mezzo.threatscan.rules import finding
from mezzo.threatscan.terraform import TfResource


@dataclass(frozen=True)
class DataTarget:
    node: Node
    action: str
    resource: str
    verb: str


GENERIC_TARGETS = (
    DataTarget(
        Node("aws:any-s3-bucket", NodeKind.DATASTORE, "every S3 bucket in the account"),
        "s3:GetObject",
        "arn:aws:s3:::mezzo-any-bucket/mezzo-any-object",
        "reads objects from any S3 bucket (s3:GetObject)",
    ),
    DataTarget(
        Node("aws:any-secret", NodeKind.SECRET, "every Secrets Manager secret"),
        "secretsmanager:GetSecretValue",
        f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:mezzo-any-AbCdEf",
        "reads any secret (secretsmanager:GetSecretValue)",
    ),
    DataTarget(
        Node("aws:any-dynamodb-table", NodeKind.DATASTORE, "every DynamoDB table"),
        "dynamodb:Scan",
        f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/mezzo-any",
        "scans any DynamoDB table (dynamodb:Scan)",
    ),
)


def data_targets(resources: list[TfResource]) -> list[DataTarget]:
    targets: list[DataTarget] = []
    for resource in resources:
        if resource.mode != "resource":
            continue
        name = display_name(resource)
        node = Node(node_id(resource), NodeKind.DATASTORE, f"S3 bucket {name}", resource.location)
        if resource.type == "aws_s3_bucket":
            targets.append(
                DataTarget(
                    node,
                    "s3:GetObject",
                    f"{arn_of(resource)}/mezzo-any",
                    f"reads objects from bucket {name} (s3:GetObject)",
                )
            )
        elif resource.type == "aws_dynamodb_table":
            node.label = f"DynamoDB table {name}"
            targets.append(
                DataTarget(
                    node, "dynamodb:Scan", arn_of(resource), f"scans table {name} (dynamodb:Scan)"
                )
            )
        elif resource.type == "aws_secretsmanager_secret":
            node.kind, node.label = NodeKind.SECRET, f"secret {name}"
            targets.append(
                DataTarget(
                    node,
                    "secretsmanager:GetSecretValue",
                    arn_of(resource),
                    f"reads secret {name} (secretsmanager:GetSecretValue)",
                )
            )
        elif resource.type == "aws_ssm_parameter" and resource.values.get("type") == "SecureString":
            node.kind, node.label = NodeKind.SECRET, f"SSM parameter {name}"
            targets.append(
                DataTarget(
                    node,
                    "ssm:GetParameter",
                    arn_of(resource),
                    f"reads parameter {name} (ssm:GetParameter)",
                )
            )
    return targets


def admin_principals(graph: Graph) -> set[str]:
    return {e.source for e in graph.edges.values() if e.kind == "administers"}


def add_data_edges(principals: list[Principal], targets: list[DataTarget], graph: Graph) -> None:
    """Read access to data stores; an administrator's access is already its admin edge."""
    admins = admin_principals(graph)
    for principal in principals:
        if principal.node_id in admins:
            continue
        for generic in GENERIC_TARGETS:
            decision = principal.can(generic.action, generic.resource)
            # "every bucket" needs a known wildcard; `${var.x}` names one bucket we cannot see
            covered = decision.allowed and not decision.depends
            if covered:
                graph.add_node(generic.node)
                graph.add_edge(_data_edge(principal, generic, decision))
            service = generic.action.split(":")[0]
            for target in targets:
                if target.action.split(":")[0] != service or covered:
                    continue
                decision = principal.can(target.action, target.resource)
                if decision.allowed:
                    graph.add_node(target.node)
                    graph.add_edge(_data_edge(principal, target, decision))
        for target in targets:
            if target.action.startswith("ssm:"):
                decision = principal.can(target.action, target.resource)
                if decision.allowed:
                    graph.add_node(target.node)
                    graph.add_edge(_data_edge(principal, target, decision))


def _data_edge(principal: Principal, target: DataTarget, decision: Any) -> Edge:
    return decision_edge(
        principal.node_id,
        target.node.id,
        "can_read",
        target.action,
        target.verb,
        decision,
        principal.location,
    )


def public_buckets(index: ResourceIndex, graph: Graph, result: AwsResult) -> None:
    blocked: set[str] = set()
    for block in index.by_type["aws_s3_bucket_public_access_block"]:
        bucket = index.find("aws_s3_bucket", block.values.get("bucket"))
        if (
            bucket
            and block.values.get("restrict_public_buckets") is True
            and block.values.get("ignore_public_acls") is True
        ):
            blocked.add(bucket.address)
    public: dict[str, tuple[TfResource, Location, str]] = {}
    for bucket in index.by_type["aws_s3_bucket"]:
        if bucket.values.get("acl") in ("public-read", "public-read-write"):
            public[bucket.address] = (bucket, bucket.at("acl"), f"ACL {bucket.values['acl']}")
    for acl in index.by_type["aws_s3_bucket_acl"]:
        bucket = index.find("aws_s3_bucket", acl.values.get("bucket"))
        if bucket and acl.values.get("acl") in ("public-read", "public-read-write"):
            public[bucket.address] = (bucket, acl.at("acl"), f"ACL {acl.values['acl']}")
    for policy_resource in index.by_type["aws_s3_bucket_policy"]:
        bucket = index.find("aws_s3_bucket", policy_resource.values.get("bucket"))
        policy = policy_attribute(policy_resource, "policy", policy_resource.address, result)
        if bucket is None or policy is None:
            continue
        for statement in policy.statements:
            if (
                statement.effect == "Allow"
                and is_public_principal(statement)
                and any(
                    a.lower() in ("s3:getobject", "s3:*", "*", "s3:get*")
                    for a in statement.actions or ()
                )
                and condition_result(statement.conditions, ATTACKER_CONTEXT) is not False
            ):
                public[bucket.address] = (
                    bucket,
                    statement.location or policy_resource.location,
                    "a bucket policy granting Principal *",
                )
    for name, (bucket, where, how) in sorted(public.items()):
        if name in blocked:
            continue
        label = display_name(bucket)
        result.findings.append(
            finding(
                "MZ-AWS-002",
                f"S3 bucket {label} is public through {how}",
                where,
                (node_id(bucket),),
            )
        )
        graph.add_node(
            Node(node_id(bucket), NodeKind.DATASTORE, f"S3 bucket {label}", bucket.location)
        )
        graph.add_edge(
            Edge(
                INTERNET,
                node_id(bucket),
                "can_read",
                "public-bucket",
                f"downloads objects from bucket {label} anonymously ({how})",
                where,
            )
        )
