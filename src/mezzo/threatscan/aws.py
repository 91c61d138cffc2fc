"""Terraform AWS resources -> graph nodes, edges and single-resource findings."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Any

from mezzo.threatscan.aws_managed import managed_policy
from mezzo.threatscan.graph import INTERNET, Graph
from mezzo.threatscan.iam import (
    ACCOUNT,
    ATTACKER_CONTEXT,
    REGION,
    Policy,
    PolicyError,
    Statement,
    condition_result,
    is_public_principal,
    parse_policy_document,
)
from mezzo.threatscan.model import Edge, Finding, Location, Node, NodeKind, Unknown
from mezzo.threatscan.privesc import ADMIN_NODE, Principal, escalation_edges
from mezzo.threatscan.rules import finding
from mezzo.threatscan.terraform import NAME_ATTRIBUTES, TfResource, synthetic_arn

WORLD = ("0.0.0.0/0", "::/0")
ADMIN_PORTS = (22, 3389)


@dataclass
class AwsResult:
    principals: list[Principal] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    node_roles: list[str] = field(default_factory=list)


def display_name(resource: TfResource) -> str:
    if resource.display is None:
        resource.display = resource.name
        for key in NAME_ATTRIBUTES.get(resource.type, ("name",)):
            value = resource.values.get(key)
            if isinstance(value, str) and value:
                resource.display = value
                break
    return resource.display


def arn_of(resource: TfResource) -> str:
    return synthetic_arn(resource.type, display_name(resource))


def node_id(resource: TfResource) -> str:
    return f"tf:{resource.address}"


class _Index:
    def __init__(self, resources: list[TfResource]) -> None:
        self.by_type: dict[str, list[TfResource]] = defaultdict(list)
        self._names: dict[tuple[str, str], TfResource] = {}
        for resource in resources:
            if resource.mode != "resource":
                continue
            self.by_type[resource.type].append(resource)
            for key in (resource.name, display_name(resource), arn_of(resource)):
                self._names.setdefault((resource.type, key), resource)

    def find(self, kind: str, reference: Any) -> TfResource | None:
        if not isinstance(reference, str):
            return None
        found = self._names.get((kind, reference))
        if found is None and reference.startswith("arn:"):
            found = self._names.get((kind, reference.rsplit("/", 1)[-1]))
        return found


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def build(resources: list[TfResource], graph: Graph) -> AwsResult:
    index = _Index(resources)
    result = AwsResult()
    principals = _principals(index, result)
    result.principals = list(principals.values())
    _public_trust(index, principals, graph, result)
    workloads = _workloads(index, principals, graph, result)
    _network(index, workloads, graph, result)
    _datastores(index, graph, result)
    return result


# ----------------------------------------------------------------------------- identities


def _policy(resource: TfResource, key: str, name: str, result: AwsResult) -> Policy | None:
    value = resource.values.get(key)
    if value is None:
        return None
    try:
        return parse_policy_document(value, name, resource.at(key))
    except PolicyError as exc:
        result.notes.append(f"{resource.location}: {resource.address}.{key}: {exc}")
        return None


def _principals(index: _Index, result: AwsResult) -> dict[str, Principal]:
    principals: dict[str, Principal] = {}
    by_resource: dict[tuple[str, str], Principal] = {}
    for kind, tf_type in (
        ("role", "aws_iam_role"),
        ("user", "aws_iam_user"),
        ("group", "aws_iam_group"),
    ):
        for resource in index.by_type[tf_type]:
            principal = Principal(
                node_id(resource), kind, display_name(resource), arn_of(resource), resource.location
            )
            principals[principal.node_id] = principal
            by_resource[(tf_type, resource.name)] = principal
            if kind == "role":
                trust = _policy(resource, "assume_role_policy", "trust", result)
                principal.trust = list(trust.statements) if trust else []
                for inline in _as_list(resource.values.get("inline_policy")):
                    if isinstance(inline, dict) and "policy" in inline:
                        try:
                            principal.policies.append(
                                parse_policy_document(
                                    inline["policy"],
                                    str(inline.get("name", "inline")),
                                    Location(resource.location.path, inline.line_of("policy")),
                                )
                            )
                        except PolicyError as exc:
                            result.notes.append(f"{resource.location}: inline_policy: {exc}")
                for arn in _as_list(resource.values.get("managed_policy_arns")):
                    _attach(principal, arn, index, result, resource.at("managed_policy_arns"))

    def owner(tf_type: str, reference: Any) -> Principal | None:
        target = index.find(tf_type, reference)
        return by_resource.get((tf_type, target.name)) if target else None

    for suffix, tf_type, key in (
        ("role", "aws_iam_role", "role"),
        ("user", "aws_iam_user", "user"),
        ("group", "aws_iam_group", "group"),
    ):
        for resource in index.by_type[f"aws_iam_{suffix}_policy"]:
            principal = owner(tf_type, resource.values.get(key))
            policy = _policy(resource, "policy", resource.address, result)
            if principal and policy:
                principal.policies.append(policy)
        for resource in index.by_type[f"aws_iam_{suffix}_policy_attachment"]:
            principal = owner(tf_type, resource.values.get(key))
            if principal:
                _attach(
                    principal,
                    resource.values.get("policy_arn"),
                    index,
                    result,
                    resource.at("policy_arn"),
                )
    for resource in index.by_type["aws_iam_policy_attachment"]:
        for tf_type, key in (
            ("aws_iam_role", "roles"),
            ("aws_iam_user", "users"),
            ("aws_iam_group", "groups"),
        ):
            for reference in _as_list(resource.values.get(key)):
                principal = owner(tf_type, reference)
                if principal:
                    _attach(
                        principal,
                        resource.values.get("policy_arn"),
                        index,
                        result,
                        resource.at("policy_arn"),
                    )
    memberships: list[tuple[Any, Any]] = []
    for resource in index.by_type["aws_iam_group_membership"]:
        memberships += [
            (u, resource.values.get("group")) for u in _as_list(resource.values.get("users"))
        ]
    for resource in index.by_type["aws_iam_user_group_membership"]:
        memberships += [
            (resource.values.get("user"), g) for g in _as_list(resource.values.get("groups"))
        ]
    for user_ref, group_ref in memberships:
        user, group = owner("aws_iam_user", user_ref), owner("aws_iam_group", group_ref)
        if user and group and group.arn not in user.group_arns:
            user.group_arns.append(group.arn)
            user.group_ids.append(group.node_id)
            user.policies.extend(group.policies)
            user.attached_policy_arns.extend(group.attached_policy_arns)
    for tf_type in ("aws_iam_role", "aws_iam_user"):
        for resource in index.by_type[tf_type]:
            arn = resource.values.get("permissions_boundary")
            principal = by_resource[(tf_type, resource.name)]
            if isinstance(arn, str):
                boundary = _managed(arn, index, result)
                if boundary is not None:
                    principal.boundary = list(boundary.statements)
    return principals


def _managed(arn: Any, index: _Index, result: AwsResult) -> Policy | None:
    if not isinstance(arn, str):
        return None
    resource = index.find("aws_iam_policy", arn)
    if resource is not None:
        return _policy(resource, "policy", arn, result)
    document = managed_policy(arn)
    if document is not None:
        return parse_policy_document(document, arn, None)
    result.notes.append(f"managed policy {arn} is not known offline; its grants are not modelled")
    return None


def _attach(
    principal: Principal, arn: Any, index: _Index, result: AwsResult, where: Location
) -> None:
    policy = _managed(arn, index, result)
    if policy is None:
        return
    if policy.location is None:  # AWS managed: point at the attachment
        policy = Policy(policy.name, tuple(_relocate(s, where) for s in policy.statements), where)
    principal.policies.append(policy)
    if isinstance(arn, str):
        resource = index.find("aws_iam_policy", arn)
        principal.attached_policy_arns.append(arn_of(resource) if resource else arn)


def _relocate(statement: Statement, where: Location) -> Statement:
    return replace(statement, location=where)


def _public_trust(
    index: _Index, principals: dict[str, Principal], graph: Graph, result: AwsResult
) -> None:
    for principal in principals.values():
        if principal.kind != "role":
            continue
        for statement in principal.trust:
            if statement.effect != "Allow" or not is_public_principal(statement):
                continue
            if condition_result(statement.conditions, principal.context()) is False:
                continue
            location = statement.location or principal.location
            result.findings.append(
                finding(
                    "MZ-AWS-005",
                    f"Role {principal.name} can be assumed by any AWS principal",
                    location,
                    (principal.node_id,),
                )
            )
            graph.add_node(_identity_node(principal))
            graph.add_edge(
                Edge(
                    INTERNET,
                    principal.node_id,
                    "can_assume",
                    "public-trust-policy",
                    f"assumes role {principal.name} from any AWS account",
                    location,
                )
            )
            break


def _identity_node(principal: Principal) -> Node:
    return Node(
        principal.node_id,
        NodeKind.IDENTITY,
        f"IAM {principal.kind} {principal.name}",
        principal.location,
        {"arn": principal.arn},
    )


def add_identity_edges(principals: list[Principal], graph: Graph, result: AwsResult) -> None:
    """Escalation edges between all principals (Terraform and IAM JSON together)."""
    graph.add_node(Node(ADMIN_NODE, NodeKind.ADMIN, "administrator of the AWS account"))
    for principal in principals:
        graph.add_node(_identity_node(principal))
    by_id = {p.node_id: p for p in principals}
    for edge in escalation_edges(principals):
        graph.add_edge(edge)
        source = by_id[edge.source]
        if edge.target == ADMIN_NODE and edge.kind == "can_escalate_to":
            result.findings.append(
                finding(
                    "MZ-AWS-004",
                    f"IAM {source.kind} {source.name} can make itself administrator: {edge.action} "
                    f"({edge.technique})",
                    edge.location,
                    (edge.source, edge.target),
                )
            )
    for principal in principals:
        for group_id in principal.group_ids:
            graph.add_edge(
                Edge(
                    principal.node_id,
                    group_id,
                    "member_of",
                    "group-membership",
                    "acts with the permissions of its group",
                    principal.location,
                )
            )


# ----------------------------------------------------------------------------- workloads


@dataclass
class _Workload:
    resource: TfResource
    security_groups: list[str]


def _workloads(
    index: _Index, principals: dict[str, Principal], graph: Graph, result: AwsResult
) -> list[_Workload]:
    workloads: list[_Workload] = []
    profiles: dict[str, Principal] = {}
    for profile in index.by_type["aws_iam_instance_profile"]:
        role = index.find("aws_iam_role", profile.values.get("role"))
        if role is not None:
            for key in (profile.name, display_name(profile), arn_of(profile)):
                profiles[key] = principals[node_id(role)]

    def runs_as(workload: TfResource, principal: Principal | None, key: str, verb: str) -> None:
        graph.add_node(
            Node(
                node_id(workload),
                NodeKind.WORKLOAD,
                f"{workload.type} {display_name(workload)}",
                workload.location,
            )
        )
        if principal is not None:
            graph.add_node(_identity_node(principal))
            graph.add_edge(
                Edge(
                    node_id(workload),
                    principal.node_id,
                    "runs_as",
                    "workload-role",
                    verb.format(role=principal.name),
                    workload.at(key),
                )
            )

    for instance in index.by_type["aws_instance"]:
        profile = instance.values.get("iam_instance_profile")
        principal = profiles.get(profile) if isinstance(profile, str) else None
        runs_as(
            instance,
            principal,
            "iam_instance_profile",
            "reads the credentials of role {role} from the instance metadata service",
        )
        groups = _as_list(instance.values.get("vpc_security_group_ids")) + _as_list(
            instance.values.get("security_groups")
        )
        workloads.append(_Workload(instance, groups))
    for function in index.by_type["aws_lambda_function"]:
        role = index.find("aws_iam_role", function.values.get("role"))
        runs_as(
            function,
            principals.get(node_id(role)) if role else None,
            "role",
            "reads the credentials of role {role} from the function's environment",
        )
        vpc = _as_list(function.values.get("vpc_config"))
        groups = _as_list(vpc[0].get("security_group_ids")) if vpc else []
        workloads.append(_Workload(function, groups))
    for group in index.by_type["aws_eks_node_group"]:
        role = index.find("aws_iam_role", group.values.get("node_role_arn"))
        if role is not None:
            runs_as(
                group,
                principals.get(node_id(role)),
                "node_role_arn",
                "reads the node role {role} from the instance metadata service",
            )
            result.node_roles.append(node_id(role))
    for task in index.by_type["aws_ecs_task_definition"]:
        role = index.find("aws_iam_role", task.values.get("task_role_arn"))
        if role is not None:
            runs_as(
                task,
                principals.get(node_id(role)),
                "task_role_arn",
                "reads the task role {role} from the container credentials endpoint",
            )
    _public_lambdas(index, graph, result)
    return workloads


def _public_lambdas(index: _Index, graph: Graph, result: AwsResult) -> None:
    def expose(function: TfResource | None, where: Location, how: str) -> None:
        if function is None:
            return
        result.findings.append(
            finding(
                "MZ-AWS-006",
                f"Lambda function {display_name(function)} {how}",
                where,
                (node_id(function),),
            )
        )
        graph.add_edge(
            Edge(
                INTERNET,
                node_id(function),
                "exposes",
                "public-lambda",
                f"invokes function {display_name(function)} ({how})",
                where,
            )
        )

    for url in index.by_type["aws_lambda_function_url"]:
        if url.values.get("authorization_type") == "NONE":
            function = index.find("aws_lambda_function", url.values.get("function_name"))
            expose(function, url.at("authorization_type"), "has a function URL without auth")
    for permission in index.by_type["aws_lambda_permission"]:
        if permission.values.get("principal") == "*":
            function = index.find("aws_lambda_function", permission.values.get("function_name"))
            expose(function, permission.at("principal"), "grants invoke to principal *")


# ----------------------------------------------------------------------------- network


@dataclass(frozen=True)
class _Ingress:
    location: Location
    from_port: int | None
    to_port: int | None
    protocol: str
    world: bool
    source_groups: tuple[str, ...]

    def covers(self, port: int) -> bool:
        if self.protocol in ("-1", "all") or self.from_port is None or self.to_port is None:
            return True
        return self.from_port <= port <= self.to_port or (self.from_port == 0 == self.to_port)


def _ingress_rules(index: _Index) -> dict[str, list[_Ingress]]:
    rules: dict[str, list[_Ingress]] = defaultdict(list)

    def port(value: Any) -> int | None:
        return value if isinstance(value, int) else None

    def is_world(*cidrs: Any) -> bool:
        return any(isinstance(c, Unknown) or c in WORLD for c in cidrs)

    for group in index.by_type["aws_security_group"]:
        for rule in _as_list(group.values.get("ingress")):
            cidrs = _as_list(rule.get("cidr_blocks")) + _as_list(rule.get("ipv6_cidr_blocks"))
            rules[node_id(group)].append(
                _Ingress(
                    Location(group.location.path, rule.line),
                    port(rule.get("from_port")),
                    port(rule.get("to_port")),
                    str(rule.get("protocol", "tcp")),
                    is_world(*cidrs),
                    tuple(str(s) for s in _as_list(rule.get("security_groups"))),
                )
            )
    for rule in index.by_type["aws_security_group_rule"]:
        group = index.find("aws_security_group", rule.values.get("security_group_id"))
        if group is None or rule.values.get("type") != "ingress":
            continue
        cidrs = _as_list(rule.values.get("cidr_blocks")) + _as_list(
            rule.values.get("ipv6_cidr_blocks")
        )
        source = rule.values.get("source_security_group_id")
        rules[node_id(group)].append(
            _Ingress(
                rule.location,
                port(rule.values.get("from_port")),
                port(rule.values.get("to_port")),
                str(rule.values.get("protocol", "tcp")),
                is_world(*cidrs),
                (str(source),) if source else (),
            )
        )
    for rule in index.by_type["aws_vpc_security_group_ingress_rule"]:
        group = index.find("aws_security_group", rule.values.get("security_group_id"))
        if group is None:
            continue
        source = rule.values.get("referenced_security_group_id")
        rules[node_id(group)].append(
            _Ingress(
                rule.location,
                port(rule.values.get("from_port")),
                port(rule.values.get("to_port")),
                str(rule.values.get("ip_protocol", "tcp")),
                is_world(rule.values.get("cidr_ipv4"), rule.values.get("cidr_ipv6")),
                (str(source),) if source else (),
            )
        )
    return rules


def _network(index: _Index, workloads: list[_Workload], graph: Graph, result: AwsResult) -> None:
    rules = _ingress_rules(index)
    for group in index.by_type["aws_security_group"]:
        for rule in rules.get(node_id(group), []):
            if rule.world and any(rule.covers(p) for p in ADMIN_PORTS):
                what = "every port" if rule.protocol in ("-1", "all") else "an administrative port"
                result.findings.append(
                    finding(
                        "MZ-AWS-001",
                        f"Security group {display_name(group)} opens {what} to the internet",
                        rule.location,
                        (node_id(group),),
                    )
                )

    def open_rule(references: list[Any]) -> _Ingress | None:
        for reference in references:
            if isinstance(reference, Unknown):
                return _Ingress(Location("", 0), None, None, "-1", True, ())
            group = index.find("aws_security_group", reference)
            for rule in rules.get(node_id(group), []) if group else []:
                if rule.world:
                    return rule
        return None

    public_ips = {
        str(eip.values.get("instance"))
        for eip in index.by_type["aws_eip"]
        if isinstance(eip.values.get("instance"), str)
    }
    by_instance: dict[str, _Workload] = {node_id(w.resource): w for w in workloads}
    for workload in workloads:
        instance = workload.resource
        if instance.type != "aws_instance":
            continue
        public = instance.values.get("associate_public_ip_address") is True or any(
            index.find("aws_instance", ip) is instance for ip in public_ips
        )
        rule = open_rule(workload.security_groups) if public else None
        if rule is not None:
            where = rule.location if rule.location.path else instance.location
            graph.add_edge(
                Edge(
                    INTERNET,
                    node_id(instance),
                    "exposes",
                    "public-instance",
                    f"reaches instance {display_name(instance)} on its public IP "
                    "through an open security group",
                    where,
                )
            )
    _load_balancers(index, rules, by_instance, graph)
    _database_reach(index, rules, workloads, graph, result)


def _load_balancers(
    index: _Index, rules: dict[str, list[_Ingress]], by_instance: dict[str, _Workload], graph: Graph
) -> None:
    target_groups: dict[str, list[TfResource]] = defaultdict(list)
    for attachment in index.by_type["aws_lb_target_group_attachment"]:
        group = index.find("aws_lb_target_group", attachment.values.get("target_group_arn"))
        instance = index.find("aws_instance", attachment.values.get("target_id"))
        if group and instance and node_id(instance) in by_instance:
            target_groups[node_id(group)].append(instance)
    for lb_type in ("aws_lb", "aws_alb"):
        for balancer in index.by_type[lb_type]:
            if balancer.values.get("internal") is True:
                continue
            groups = _as_list(balancer.values.get("security_groups"))
            is_network = balancer.values.get("load_balancer_type") == "network"
            opened = any(
                isinstance(g, Unknown)
                or any(
                    r.world
                    for r in rules.get(
                        node_id(index.find("aws_security_group", g))
                        if index.find("aws_security_group", g)
                        else "",
                        [],
                    )
                )
                for g in groups
            )
            if not (opened or is_network or not groups):
                continue
            targets: list[tuple[TfResource, Location]] = []
            for listener in index.by_type["aws_lb_listener"] + index.by_type["aws_alb_listener"]:
                if (
                    index.find(balancer.type, listener.values.get("load_balancer_arn"))
                    is not balancer
                ):
                    continue
                for action in _as_list(listener.values.get("default_action")):
                    group = index.find("aws_lb_target_group", action.get("target_group_arn"))
                    for instance in target_groups.get(node_id(group), []) if group else []:
                        targets.append((instance, listener.location))
            if not targets:
                continue
            graph.add_node(
                Node(
                    node_id(balancer),
                    NodeKind.ENTRY,
                    f"internet-facing load balancer {display_name(balancer)}",
                    balancer.location,
                )
            )
            graph.add_edge(
                Edge(
                    INTERNET,
                    node_id(balancer),
                    "exposes",
                    "internet-facing-lb",
                    f"sends requests to load balancer {display_name(balancer)}",
                    balancer.at("internal"),
                )
            )
            for instance, where in targets:
                graph.add_edge(
                    Edge(
                        node_id(balancer),
                        node_id(instance),
                        "exposes",
                        "lb-target",
                        f"is forwarded to instance {display_name(instance)}",
                        where,
                    )
                )


def _database_reach(
    index: _Index,
    rules: dict[str, list[_Ingress]],
    workloads: list[_Workload],
    graph: Graph,
    result: AwsResult,
) -> None:
    for db_type in ("aws_db_instance", "aws_rds_cluster"):
        for database in index.by_type[db_type]:
            db_node = Node(
                node_id(database),
                NodeKind.DATASTORE,
                f"database {display_name(database)}",
                database.location,
            )
            graph.add_node(db_node)
            groups = [
                index.find("aws_security_group", g)
                for g in _as_list(database.values.get("vpc_security_group_ids"))
            ]
            db_rules = [r for g in groups if g for r in rules.get(node_id(g), [])]
            if database.values.get("publicly_accessible") is True:
                result.findings.append(
                    finding(
                        "MZ-AWS-003",
                        f"Database {display_name(database)} is publicly accessible",
                        database.at("publicly_accessible"),
                        (node_id(database),),
                    )
                )
                world = next((r for r in db_rules if r.world), None)
                if world is not None:
                    graph.add_edge(
                        Edge(
                            INTERNET,
                            node_id(database),
                            "can_reach",
                            "public-database",
                            f"connects to database {display_name(database)} from the internet",
                            world.location,
                        )
                    )
            for workload in workloads if db_rules else []:
                names = set()
                for reference in workload.security_groups:
                    group = index.find("aws_security_group", reference)
                    if group:
                        names |= {group.name, display_name(group), arn_of(group)}
                for rule in db_rules:
                    if names & set(rule.source_groups):
                        graph.add_edge(
                            Edge(
                                node_id(workload.resource),
                                node_id(database),
                                "can_reach",
                                "security-group-reference",
                                f"connects to database {display_name(database)} "
                                "(its security group admits this workload's group)",
                                rule.location,
                            )
                        )
                        break


# ----------------------------------------------------------------------------- data stores


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


def _admins(graph: Graph) -> set[str]:
    return {e.source for e in graph.edges.values() if e.kind == "administers"}


def add_data_edges(principals: list[Principal], targets: list[DataTarget], graph: Graph) -> None:
    """Read access to data stores; an administrator's access is already its admin edge."""
    admins = _admins(graph)
    for principal in principals:
        if principal.node_id in admins:
            continue
        for generic in GENERIC_TARGETS:
            decision = principal.can(generic.action, generic.resource)
            covered = decision.allowed
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
    location = decision.statement.location if decision.statement else None
    verb = target.verb + (
        " (a condition applies that cannot be checked offline)" if decision.conditional else ""
    )
    return Edge(
        principal.node_id,
        target.node.id,
        "can_read",
        target.action,
        verb,
        location or principal.location,
    )


def _datastores(index: _Index, graph: Graph, result: AwsResult) -> None:
    blocked: set[str] = set()
    for block in index.by_type["aws_s3_bucket_public_access_block"]:
        bucket = index.find("aws_s3_bucket", block.values.get("bucket"))
        if (
            bucket
            and block.values.get("restrict_public_buckets") is True
            and block.values.get("ignore_public_acls") is True
        ):
            blocked.add(bucket.name)
    public: dict[str, tuple[TfResource, Location, str]] = {}
    for bucket in index.by_type["aws_s3_bucket"]:
        if bucket.values.get("acl") in ("public-read", "public-read-write"):
            public[bucket.name] = (bucket, bucket.at("acl"), f"ACL {bucket.values['acl']}")
    for acl in index.by_type["aws_s3_bucket_acl"]:
        bucket = index.find("aws_s3_bucket", acl.values.get("bucket"))
        if bucket and acl.values.get("acl") in ("public-read", "public-read-write"):
            public[bucket.name] = (bucket, acl.at("acl"), f"ACL {acl.values['acl']}")
    for policy_resource in index.by_type["aws_s3_bucket_policy"]:
        bucket = index.find("aws_s3_bucket", policy_resource.values.get("bucket"))
        policy = _policy(policy_resource, "policy", policy_resource.address, result)
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
                public[bucket.name] = (
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


_CONTROL_ACTIONS = {
    "aws_lambda_function": (
        ("lambda:UpdateFunctionCode", "replaces the code of function {name} and invokes it"),
    ),
    "aws_instance": (
        ("ssm:SendCommand", "runs shell commands on instance {name} with SSM Run Command"),
        ("ssm:StartSession", "opens an SSM shell session on instance {name}"),
        (
            "ec2-instance-connect:SendSSHPublicKey",
            "pushes an SSH key with EC2 Instance Connect and logs into instance {name}",
        ),
    ),
}


def add_workload_control_edges(
    principals: list[Principal], resources: list[TfResource], graph: Graph
) -> None:
    """Running code on an existing workload hands over the workload's role."""
    admins = _admins(graph)
    for resource in resources:
        actions = _CONTROL_ACTIONS.get(resource.type)
        if resource.mode != "resource" or not actions or node_id(resource) not in graph.nodes:
            continue
        arn = arn_of(resource)
        for principal in principals:
            if principal.node_id in admins:
                continue
            for action, verb in actions:
                decision = principal.can(action, arn)
                if decision.allowed:
                    location = decision.statement.location if decision.statement else None
                    graph.add_edge(
                        Edge(
                            principal.node_id,
                            node_id(resource),
                            "can_exec",
                            action,
                            verb.format(name=display_name(resource)),
                            location or principal.location,
                        )
                    )
                    break
