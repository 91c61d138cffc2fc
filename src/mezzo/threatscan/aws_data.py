"""AWS data stores: who can read them, and buckets anyone can read."""

from __future__ import annotations

from dataclasses import dataclass

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
    Decision,
    condition_result,
    is_public_principal,
)
from mezzo.threatscan.model import Edge, Location, Node, NodeKind
from mezzo.threatscan.privesc import Principal, combine, decision_edge
from mezzo.threatscan.rules import finding
from mezzo.threatscan.secrets import looks_like_secret_name, looks_like_secret_value
from mezzo.threatscan.terraform import TfResource


@dataclass(frozen=True)
class DataTarget:
    """A crown jewel and what it takes to reach it: every (action, resource) must be allowed."""

    node: Node
    needs: tuple[tuple[str, str], ...]
    verb: str

    @property
    def technique(self) -> str:
        return "+".join(action for action, _ in self.needs)

    @property
    def service(self) -> str:
        return self.needs[0][0].split(":")[0]


def _any(node_id: str, kind: str, label: str, action: str, resource: str, verb: str) -> DataTarget:
    return DataTarget(Node(node_id, kind, label), ((action, resource),), verb)


_ANY_ARN = f"{REGION}:{ACCOUNT}"
GENERIC_TARGETS = (
    _any(
        "aws:any-s3-bucket",
        NodeKind.DATASTORE,
        "every S3 bucket in the account",
        "s3:GetObject",
        "arn:aws:s3:::mezzo-any-bucket/mezzo-any-object",
        "reads objects from any S3 bucket (s3:GetObject)",
    ),
    _any(
        "aws:any-secret",
        NodeKind.SECRET,
        "every Secrets Manager secret",
        "secretsmanager:GetSecretValue",
        f"arn:aws:secretsmanager:{_ANY_ARN}:secret:mezzo-any-AbCdEf",
        "reads any secret (secretsmanager:GetSecretValue)",
    ),
    _any(
        "aws:any-dynamodb-table",
        NodeKind.DATASTORE,
        "every DynamoDB table",
        "dynamodb:Scan",
        f"arn:aws:dynamodb:{_ANY_ARN}:table/mezzo-any",
        "scans any DynamoDB table (dynamodb:Scan)",
    ),
    _any(
        "aws:any-ssm-parameter",
        NodeKind.SECRET,
        "every SSM parameter",
        "ssm:GetParameter",
        f"arn:aws:ssm:{_ANY_ARN}:parameter/mezzo-any",
        "reads any SSM parameter, SecureString ones decrypted (ssm:GetParameter)",
    ),
    _any(
        "aws:any-kms-key",
        NodeKind.SECRET,
        "every KMS key (decrypt)",
        "kms:Decrypt",
        f"arn:aws:kms:{_ANY_ARN}:key/mezzo-any",
        "decrypts anything encrypted under any KMS key (kms:Decrypt)",
    ),
)


def data_targets(resources: list[TfResource]) -> list[DataTarget]:
    """The crown jewels among the resources: data stores and secrets, with what reaches them."""
    targets: list[DataTarget] = []
    for resource in resources:
        if resource.mode != "resource":
            continue
        for kind, label, needs, verb in _jewel(resource):
            node = Node(node_id(resource), kind, label, resource.location)
            targets.append(DataTarget(node, needs, verb))
    return targets


Jewel = tuple[str, str, tuple[tuple[str, str], ...], str]


def _jewel(resource: TfResource) -> list[Jewel]:
    name, arn = display_name(resource), arn_of(resource)
    kind = resource.type
    if kind == "aws_s3_bucket":
        return [
            (
                NodeKind.DATASTORE,
                f"S3 bucket {name}",
                (("s3:GetObject", f"{arn}/mezzo-any"),),
                f"reads objects from bucket {name} (s3:GetObject)",
            )
        ]
    if kind == "aws_dynamodb_table":
        return [
            (
                NodeKind.DATASTORE,
                f"DynamoDB table {name}",
                (("dynamodb:Scan", arn),),
                f"scans table {name} (dynamodb:Scan)",
            )
        ]
    if kind == "aws_secretsmanager_secret":
        return [
            (
                NodeKind.SECRET,
                f"secret {name}",
                (("secretsmanager:GetSecretValue", arn),),
                f"reads secret {name} (secretsmanager:GetSecretValue)",
            )
        ]
    if kind == "aws_ssm_parameter" and (
        resource.values.get("type") == "SecureString" or _looks_secret(resource)
    ):
        return [
            (
                NodeKind.SECRET,
                f"SSM parameter {name}",
                (("ssm:GetParameter", arn),),
                f"reads parameter {name} (ssm:GetParameter)",
            )
        ]
    if kind == "aws_kms_key":
        return [
            (
                NodeKind.SECRET,
                f"KMS key {name}",
                (("kms:Decrypt", arn),),
                f"decrypts what KMS key {name} protects (kms:Decrypt)",
            )
        ]
    if kind in ("aws_db_instance", "aws_rds_cluster"):
        user = (
            arn.replace(":rds:", ":rds-db:")
            .replace(":db:", ":dbuser:")
            .replace(":cluster:", ":dbuser:")
        )
        return [
            (
                NodeKind.DATASTORE,
                f"database {name}",
                (
                    (
                        "rds:ModifyDBInstance"
                        if kind == "aws_db_instance"
                        else "rds:ModifyDBCluster",
                        arn,
                    ),
                ),
                f"resets the master password of database {name} and connects "
                "(rds:ModifyDBInstance)",
            ),
            (
                NodeKind.DATASTORE,
                f"database {name}",
                (("rds-db:connect", f"{user}/mezzo-any"),),
                f"connects to database {name} with IAM authentication (rds-db:connect)",
            ),
        ]
    if kind in ("aws_db_snapshot", "aws_db_cluster_snapshot"):
        return [
            (
                NodeKind.DATASTORE,
                f"database snapshot {name}",
                (
                    ("rds:RestoreDBInstanceFromDBSnapshot", arn),
                    ("rds:ModifyDBInstance", f"arn:aws:rds:{_ANY_ARN}:db:mezzo-restored"),
                ),
                f"restores snapshot {name} into a new instance and resets its master password "
                "(rds:RestoreDBInstanceFromDBSnapshot, rds:ModifyDBInstance)",
            )
        ]
    return []


def _looks_secret(resource: TfResource) -> bool:
    value = resource.values.get("value") or resource.values.get("insecure_value")
    return looks_like_secret_name(display_name(resource)) or (
        isinstance(value, str) and looks_like_secret_value(value)
    )


def admin_principals(graph: Graph) -> set[str]:
    return {e.source for e in graph.edges.values() if e.kind == "administers"}


def add_data_edges(principals: list[Principal], targets: list[DataTarget], graph: Graph) -> None:
    """Read access to data stores and secrets; an administrator's is already its admin edge.

    "Every X" is drawn only for a known wildcard; a principal it covers gets no edge per X.
    """
    admins = admin_principals(graph)
    for principal in principals:
        if principal.node_id in admins:
            continue
        covered: set[str] = set()
        for generic in GENERIC_TARGETS:
            decision = _allowed(principal, generic)
            if decision.allowed and not decision.depends:
                covered.add(generic.service)
                graph.add_node(generic.node)
                graph.add_edge(_data_edge(principal, generic, decision))
        for target in targets:
            if target.service in covered and len(target.needs) == 1:
                continue
            decision = _allowed(principal, target)
            if decision.allowed:
                graph.add_node(target.node)
                graph.add_edge(_data_edge(principal, target, decision))


def _allowed(principal: Principal, target: DataTarget) -> Decision:
    decisions = [principal.can(action, resource) for action, resource in target.needs]
    return combine(*decisions)


def _data_edge(principal: Principal, target: DataTarget, decision: Decision) -> Edge:
    return decision_edge(
        principal.node_id,
        target.node.id,
        "can_read",
        target.technique,
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
