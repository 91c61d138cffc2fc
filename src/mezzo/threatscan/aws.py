"""Terraform AWS resources -> graph nodes, edges and single-resource findings."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from mezzo.threatscan.aws_data import public_buckets
from mezzo.threatscan.aws_index import (
    AwsResult,
    ResourceIndex,
    Workload,
    arn_of,
    as_list,
    display_name,
    node_id,
    policy_attribute,
)
from mezzo.threatscan.aws_managed import managed_policy
from mezzo.threatscan.aws_network import network
from mezzo.threatscan.graph import INTERNET, Graph
from mezzo.threatscan.iam import (
    Policy,
    PolicyError,
    Statement,
    condition_result,
    is_public_principal,
    may_be_public_principal,
    parse_policy_document,
)
from mezzo.threatscan.kubernetes import RUNTIME_DIRS, RUNTIME_SOCKETS
from mezzo.threatscan.model import Edge, LineDict, Location, Node, NodeKind, Severity
from mezzo.threatscan.privesc import (
    ADMIN_NODE,
    Principal,
    escalation_edges,
)
from mezzo.threatscan.rules import depends_note, finding
from mezzo.threatscan.terraform import TfResource


def build(resources: list[TfResource], graph: Graph) -> AwsResult:
    index = ResourceIndex(resources)
    result = AwsResult(index=index)
    principals = _principals(index, result)
    result.principals = list(principals.values())
    _public_trust(index, principals, graph, result)
    workloads = _workloads(index, principals, graph, result)
    network(index, workloads, graph, result)
    public_buckets(index, graph, result)
    return result


# ----------------------------------------------------------------------------- identities


def _principals(index: ResourceIndex, result: AwsResult) -> dict[str, Principal]:
    principals: dict[str, Principal] = {}
    by_resource: dict[tuple[str, str], Principal] = {}
    principal: Principal | None
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
            by_resource[(tf_type, resource.address)] = principal
            if kind == "role":
                trust = policy_attribute(resource, "assume_role_policy", "trust", result)
                principal.trust = list(trust.statements) if trust else []
                for inline in as_list(resource.values.get("inline_policy")):
                    if isinstance(inline, dict) and "policy" in inline:
                        try:
                            principal.policies.append(
                                parse_policy_document(
                                    inline["policy"],
                                    str(inline.get("name", "inline")),
                                    Location(
                                        resource.location.path,
                                        inline.line_of("policy")
                                        if isinstance(inline, LineDict)
                                        else resource.location.line,
                                    ),
                                )
                            )
                        except PolicyError as exc:
                            result.notes.append(f"{resource.location}: inline_policy: {exc}")
                for arn in as_list(resource.values.get("managed_policy_arns")):
                    _attach(principal, arn, index, result, resource.at("managed_policy_arns"))

    def owner(tf_type: str, reference: Any) -> Principal | None:
        target = index.find(tf_type, reference)
        return by_resource.get((tf_type, target.address)) if target else None

    for suffix, tf_type, key in (
        ("role", "aws_iam_role", "role"),
        ("user", "aws_iam_user", "user"),
        ("group", "aws_iam_group", "group"),
    ):
        for resource in index.by_type[f"aws_iam_{suffix}_policy"]:
            principal = owner(tf_type, resource.values.get(key))
            policy = policy_attribute(resource, "policy", resource.address, result)
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
    for suffix, tf_type, key in (
        ("role", "aws_iam_role", "role_name"),
        ("user", "aws_iam_user", "user_name"),
        ("group", "aws_iam_group", "group_name"),
    ):
        # aws_iam_*_policy_attachments_exclusive: the complete list of managed policies
        for resource in index.by_type[f"aws_iam_{suffix}_policy_attachments_exclusive"]:
            principal = owner(tf_type, resource.values.get(key))
            for arn in as_list(resource.values.get("policy_arns")) if principal else []:
                _attach(principal, arn, index, result, resource.at("policy_arns"))  # type: ignore[arg-type]
    for resource in index.by_type["aws_iam_policy_attachment"]:
        for tf_type, key in (
            ("aws_iam_role", "roles"),
            ("aws_iam_user", "users"),
            ("aws_iam_group", "groups"),
        ):
            for reference in as_list(resource.values.get(key)):
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
            (u, resource.values.get("group")) for u in as_list(resource.values.get("users"))
        ]
    for resource in index.by_type["aws_iam_user_group_membership"]:
        memberships += [
            (resource.values.get("user"), g) for g in as_list(resource.values.get("groups"))
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
            principal = by_resource[(tf_type, resource.address)]
            if isinstance(arn, str):
                boundary = _managed(arn, index, result)
                if boundary is not None:
                    principal.boundary = list(boundary.statements)
    return principals


def _managed(arn: Any, index: ResourceIndex, result: AwsResult) -> Policy | None:
    if not isinstance(arn, str):
        return None
    resource = index.find("aws_iam_policy", arn)
    if resource is not None:
        return policy_attribute(resource, "policy", arn, result)
    document = managed_policy(arn)
    if document is not None:
        return parse_policy_document(document, arn, None)
    result.notes.append(f"managed policy {arn} is not known offline; its grants are not modelled")
    return None


def _attach(
    principal: Principal, arn: Any, index: ResourceIndex, result: AwsResult, where: Location
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
    index: ResourceIndex, principals: dict[str, Principal], graph: Graph, result: AwsResult
) -> None:
    for principal in principals.values():
        if principal.kind != "role":
            continue
        for statement in principal.trust:
            public = is_public_principal(statement)
            if statement.effect != "Allow" or not (public or may_be_public_principal(statement)):
                continue
            if condition_result(statement.conditions, principal.context()) is False:
                continue
            location = statement.location or principal.location
            depends = () if public else statement.depends or ("an unresolved principal",)
            message = (
                f"Role {principal.name} can be assumed by any AWS principal"
                if public
                else f"Role {principal.name} trusts a principal that cannot be resolved offline"
            )
            result.findings.append(
                finding(
                    "MZ-AWS-005",
                    message + depends_note(depends),
                    location,
                    (principal.node_id,),
                    Severity.LOW if depends else None,
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
                    depends,
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
                    f"({edge.technique})" + depends_note(edge.depends),
                    edge.location,
                    (edge.source, edge.target),
                    Severity.LOW if edge.depends else None,
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


def _workloads(
    index: ResourceIndex, principals: dict[str, Principal], graph: Graph, result: AwsResult
) -> list[Workload]:
    workloads: list[Workload] = []
    profiles: dict[str, Principal] = {}
    for instance_profile in index.by_type["aws_iam_instance_profile"]:
        role = index.find("aws_iam_role", instance_profile.values.get("role"))
        if role is not None:
            for key in (
                instance_profile.name,
                display_name(instance_profile),
                arn_of(instance_profile),
            ):
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
        groups = as_list(instance.values.get("vpc_security_group_ids")) + as_list(
            instance.values.get("security_groups")
        )
        workloads.append(Workload(instance, groups))
    for function in index.by_type["aws_lambda_function"]:
        role = index.find("aws_iam_role", function.values.get("role"))
        runs_as(
            function,
            principals.get(node_id(role)) if role else None,
            "role",
            "reads the credentials of role {role} from the function's environment",
        )
        vpc = as_list(function.values.get("vpc_config"))
        groups = as_list(vpc[0].get("security_group_ids")) if vpc else []
        workloads.append(Workload(function, groups))
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
    for tf_type, key, verb in _SERVICE_ROLES:
        for resource in index.by_type[tf_type]:
            role = index.find("aws_iam_role", resource.values.get(key))
            runs_as(resource, principals.get(node_id(role)) if role else None, key, verb)
    templates: dict[str, Principal | None] = {}
    for tf_type in ("aws_launch_template", "aws_launch_configuration"):
        for template in index.by_type[tf_type]:
            profile = template.values.get("iam_instance_profile")
            if isinstance(profile, list):
                first = profile[0] if profile and isinstance(profile[0], dict) else {}
                profile = first.get("name") or first.get("arn")
            principal = profiles.get(profile) if isinstance(profile, str) else None
            templates[node_id(template)] = principal
            runs_as(
                template,
                principal,
                "iam_instance_profile",
                "launches an instance from it and reads the credentials of role {role} from IMDS",
            )
    for scaling in index.by_type["aws_autoscaling_group"]:
        references = [
            (tf_type, item.get(key))
            for tf_type, attribute, key in (
                ("aws_launch_template", "launch_template", "id"),
                ("aws_launch_template", "launch_template", "name"),
            )
            for item in as_list(scaling.values.get(attribute))
            if isinstance(item, dict)
        ] + [("aws_launch_configuration", scaling.values.get("launch_configuration"))]
        launch = next(
            (t for tf_type, ref in references if (t := index.find(tf_type, ref)) is not None),
            None,
        )
        principal = templates.get(node_id(launch)) if launch else None
        runs_as(
            scaling,
            principal,
            "launch_template",
            "gets code execution on its instances and reads the credentials of role {role}",
        )
    _ecs_host_escapes(index, graph, result)
    _public_lambdas(index, graph, result)
    return workloads


_SERVICE_ROLES = (
    (
        "aws_ecs_task_definition",
        "task_role_arn",
        "reads the task role {role} from the container credentials endpoint",
    ),
    ("aws_glue_job", "role_arn", "runs its script as role {role}"),
    ("aws_glue_dev_endpoint", "role_arn", "runs code on the endpoint as role {role}"),
    ("aws_codebuild_project", "service_role", "runs its build as role {role}"),
    ("aws_cloudformation_stack", "iam_role_arn", "deploys the stack as role {role}"),
    ("aws_sagemaker_notebook_instance", "role_arn", "runs notebook code as role {role}"),
)
ECS_HOST_NODE = "aws:ecs-container-instance"


def _ecs_host_escapes(index: ResourceIndex, graph: Graph, result: AwsResult) -> None:
    """Privileged ECS containers and host mounts of the Docker socket or / hand over the host."""
    for task in index.by_type["aws_ecs_task_definition"]:
        volumes = {
            str(v.get("name")): str(v.get("host_path"))
            for v in as_list(task.values.get("volume"))
            if isinstance(v, dict) and isinstance(v.get("host_path"), str)
        }
        reasons: list[str] = []
        for container in _json_list(task.values.get("container_definitions")):
            name = container.get("name", "?")
            if container.get("privileged") is True:
                reasons.append(f"container {name} is privileged")
            for mount in as_list(container.get("mountPoints")):
                path = (
                    volumes.get(str(mount.get("sourceVolume"))) if isinstance(mount, dict) else None
                )
                if path and (
                    path.rstrip("/") in ("", "/etc", "/root", "/proc", "/var/lib/docker")
                    or path.endswith(RUNTIME_SOCKETS)
                    or path.rstrip("/") in RUNTIME_DIRS
                ):
                    reasons.append(f"container {name} mounts host path {path}")
        if not reasons:
            continue
        where = task.at("container_definitions")
        result.findings.append(
            finding(
                "MZ-AWS-009",
                f"ECS task definition {display_name(task)}: " + "; ".join(reasons),
                where,
                (node_id(task),),
            )
        )
        graph.add_node(
            Node(
                node_id(task),
                NodeKind.WORKLOAD,
                f"aws_ecs_task_definition {display_name(task)}",
                task.location,
            )
        )
        graph.add_node(Node(ECS_HOST_NODE, NodeKind.HOST, "an ECS container instance (host root)"))
        graph.add_edge(
            Edge(
                node_id(task),
                ECS_HOST_NODE,
                "can_mount_host",
                "ecs-host-escape",
                f"escapes to the container instance ({reasons[0]})",
                where,
            )
        )


def _json_list(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (json.JSONDecodeError, RecursionError):
            return []
    return [item for item in as_list(value) if isinstance(item, dict)]


def _public_lambdas(index: ResourceIndex, graph: Graph, result: AwsResult) -> None:
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
