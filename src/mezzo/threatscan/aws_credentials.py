"""Credentials left in configuration are edges: whoever can read them becomes their owner.

Environment variables of Lambda functions, CodeBuild projects, Elastic Beanstalk environments
and ECS task definitions, EC2 user data, S3 object contents, SSM `String` parameters and DynamoDB
items written by Terraform are readable by anyone with the matching describe/get permission, and
by the workload itself. An access key that references `aws_iam_access_key.x` leads to the user
that key belongs to; a literal AKIA/ASIA key id to "credentials of an unknown principal"; any
other secret-named value to a secret node.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from mezzo.threatscan.aws_data import admin_principals
from mezzo.threatscan.aws_index import (
    AwsResult,
    ResourceIndex,
    arn_of,
    as_list,
    display_name,
    node_id,
)
from mezzo.threatscan.graph import Graph
from mezzo.threatscan.model import Edge, Location, Node, NodeKind, Severity, Unknown
from mezzo.threatscan.privesc import Principal, decision_edge
from mezzo.threatscan.rules import finding
from mezzo.threatscan.secrets import (
    AWS_KEY_ID,
    AWS_SECRET_NAME,
    is_real_value,
    looks_like_secret_name,
    looks_like_secret_value,
)
from mezzo.threatscan.terraform import Ref, TfResource

_ACCESS_KEY_REF = re.compile(r"(?:^|\.)aws_iam_access_key\.([A-Za-z0-9_-]+)\.")


@dataclass(frozen=True)
class Holder:
    """Where configuration is kept and what reading it takes."""

    what: str  # "the environment of function etl"
    read_action: str
    read_resource: str


@dataclass(frozen=True)
class Leak:
    resource: TfResource
    key: str
    value: Any
    location: Location
    holder: Holder


def add_credential_edges(
    index: ResourceIndex, principals: list[Principal], graph: Graph, result: AwsResult
) -> None:
    owners = {p.node_id: p for p in principals}
    admins = admin_principals(graph)  # an administrator's reads add nothing to its admin edge
    grouped: dict[tuple[str, str], list[tuple[Leak, tuple[str, str, str, str, str]]]] = {}
    for leak in sorted(_leaks(index), key=lambda item: (item.location, item.key)):
        target = _target(index, leak, owners, graph)
        if target is not None:
            grouped.setdefault((node_id(leak.resource), target[0]), []).append((leak, target))
    for (holder_id, target_id), items in sorted(grouped.items()):
        leak, (_, kind, technique, verb, held) = items[0]
        keys = ", ".join(dict.fromkeys(item.key for item, _ in items))
        result.findings.append(
            finding(
                "MZ-AWS-008",
                f"{leak.holder.what[0].upper()}{leak.holder.what[1:]} holds {held} in {keys}",
                leak.location,
                (holder_id, target_id),
                Severity.HIGH if kind == "uses_credentials" else Severity.MEDIUM,
            )
        )
        if holder_id == target_id:
            continue
        if holder_id in graph.nodes:
            graph.add_edge(
                Edge(
                    holder_id,
                    target_id,
                    kind,
                    technique,
                    verb.format(where="from its own configuration"),
                    leak.location,
                )
            )
        for principal in principals:
            if principal.node_id == target_id or principal.node_id in admins:
                continue
            decision = principal.can(leak.holder.read_action, leak.holder.read_resource)
            if decision.allowed:
                graph.add_edge(
                    decision_edge(
                        principal.node_id,
                        target_id,
                        kind,
                        f"{leak.holder.read_action}+{technique}",
                        verb.format(where=f"from {leak.holder.what} ({leak.holder.read_action})"),
                        decision,
                        principal.location,
                    )
                )


def _target(
    index: ResourceIndex, leak: Leak, owners: dict[str, Principal], graph: Graph
) -> tuple[str, str, str, str, str] | None:
    """(node, edge kind, technique, verb, what is held) for one leaked value, or None."""
    owner = _key_owner(index, leak.value)
    if owner is not None and owner in owners:
        user = owners[owner]
        return (
            owner,
            "uses_credentials",
            "credentials-in-config",
            f"reads the access key of user {user.name} {{where}} and signs in as it",
            f"an access key of IAM user {user.name}",
        )
    text = leak.value if isinstance(leak.value, str) else ""
    aws_secret = AWS_SECRET_NAME.search(leak.key) is not None and is_real_value(text)
    if AWS_KEY_ID.search(text) or aws_secret or owner is not None:
        node = f"{node_id(leak.resource)}#aws-credentials"
        graph.add_node(
            Node(
                node,
                NodeKind.SECRET,
                f"AWS credentials of an unknown principal (in {leak.holder.what})",
                leak.location,
            )
        )
        return (
            node,
            "uses_credentials",
            "credentials-in-config",
            "reads AWS access keys of a principal outside the scanned files {where}",
            "AWS credentials of an unknown principal",
        )
    if leak.resource.type == "aws_ssm_parameter":
        if looks_like_secret_name(leak.key) and is_real_value(text):
            # a crown jewel of its own (aws_data draws who reads it): only the finding here
            holder = node_id(leak.resource)
            return (holder, "can_read", "secret-in-config", "", "a plaintext secret")
        return None
    if (looks_like_secret_name(leak.key) and is_real_value(text)) or looks_like_secret_value(text):
        node = f"{node_id(leak.resource)}#secret/{leak.key}"
        graph.add_node(
            Node(node, NodeKind.SECRET, f"{leak.key} in {leak.holder.what}", leak.location)
        )
        verb = f"reads {leak.key} {{where}}"
        return (node, "can_read", "secret-in-config", verb, "a plaintext secret")
    return None


def _key_owner(index: ResourceIndex, value: Any) -> str | None:
    """The node of the user an `aws_iam_access_key` reference belongs to."""
    key: TfResource | None = None
    if isinstance(value, Ref):
        key = index.find("aws_iam_access_key", value)
    elif isinstance(value, Unknown):
        for name in value.depends:
            match = _ACCESS_KEY_REF.search(name + ".")
            if match:
                key = next(
                    (
                        r
                        for r in index.by_type["aws_iam_access_key"]
                        if r.name == match.group(1) and name.startswith(_prefix(r))
                    ),
                    None,
                )
                break
    if key is None:
        return None
    user = index.find("aws_iam_user", key.values.get("user"))
    return node_id(user) if user is not None else ""


def _prefix(resource: TfResource) -> str:
    """`module.app.` of a resource inside a module instance, '' at the root."""
    address = (
        resource.address.removeprefix(f"{resource.unit}/") if resource.unit else resource.address
    )
    return address.rsplit("aws_iam_access_key.", 1)[0]


# ----------------------------------------------------------------------------- where to look


def _leaks(index: ResourceIndex) -> Iterator[Leak]:
    for function in index.by_type["aws_lambda_function"]:
        holder = Holder(
            f"the environment of function {display_name(function)}",
            "lambda:GetFunctionConfiguration",
            arn_of(function),
        )
        for environment in as_list(function.values.get("environment")):
            variables = environment.get("variables") if isinstance(environment, dict) else None
            yield from _mapping(function, variables, holder, "environment")
    for project in index.by_type["aws_codebuild_project"]:
        holder = Holder(
            f"the environment of CodeBuild project {display_name(project)}",
            "codebuild:BatchGetProjects",
            arn_of(project),
        )
        for environment in as_list(project.values.get("environment")):
            for variable in (
                as_list(environment.get("environment_variable"))
                if isinstance(environment, dict)
                else []
            ):
                if isinstance(variable, dict) and variable.get("type", "PLAINTEXT") == "PLAINTEXT":
                    yield _leak(
                        project, variable.get("name"), variable.get("value"), holder, "environment"
                    )
    for environment in index.by_type["aws_elastic_beanstalk_environment"]:
        holder = Holder(
            f"the settings of Elastic Beanstalk environment {display_name(environment)}",
            "elasticbeanstalk:DescribeConfigurationSettings",
            arn_of(environment),
        )
        for setting in as_list(environment.values.get("setting")):
            if (
                isinstance(setting, dict)
                and setting.get("namespace") == "aws:elasticbeanstalk:application:environment"
            ):
                yield _leak(
                    environment, setting.get("name"), setting.get("value"), holder, "setting"
                )
    for task in index.by_type["aws_ecs_task_definition"]:
        holder = Holder(f"task definition {display_name(task)}", "ecs:DescribeTaskDefinition", "*")
        for container in _containers(task.values.get("container_definitions")):
            for variable in as_list(container.get("environment")):
                if isinstance(variable, dict):
                    yield _leak(
                        task,
                        variable.get("name"),
                        variable.get("value"),
                        holder,
                        "container_definitions",
                    )
    for kind, action in (
        ("aws_instance", "ec2:DescribeInstanceAttribute"),
        ("aws_launch_template", "ec2:DescribeLaunchTemplateVersions"),
        ("aws_launch_configuration", "autoscaling:DescribeLaunchConfigurations"),
    ):
        for resource in index.by_type[kind]:
            holder = Holder(
                f"the user data of {kind.removeprefix('aws_').replace('_', ' ')} "
                f"{display_name(resource)}",
                action,
                arn_of(resource),
            )
            text = _user_data(resource)
            if text:
                yield from _script(resource, text, holder)
    for kind in ("aws_s3_object", "aws_s3_bucket_object"):
        for item in index.by_type[kind]:
            bucket = index.find("aws_s3_bucket", item.values.get("bucket"))
            key = item.values.get("key")
            bucket_name = display_name(bucket) if bucket else item.values.get("bucket")
            if not isinstance(bucket_name, str) or not isinstance(key, str):
                continue
            holder = Holder(
                f"object s3://{bucket_name}/{key}",
                "s3:GetObject",
                f"arn:aws:s3:::{bucket_name}/{key.lstrip('/')}",
            )
            content = item.values.get("content")
            if isinstance(content, str):
                yield from _script(item, content, holder, "content")
    for parameter in index.by_type["aws_ssm_parameter"]:
        if parameter.values.get("type", "String") == "SecureString":
            continue
        holder = Holder(
            f"SSM parameter {display_name(parameter)}", "ssm:GetParameter", arn_of(parameter)
        )
        yield _leak(
            parameter, display_name(parameter), parameter.values.get("value"), holder, "value"
        )
    for item in index.by_type["aws_dynamodb_table_item"]:
        table = index.find("aws_dynamodb_table", item.values.get("table_name"))
        if table is None:
            continue
        holder = Holder(
            f"an item of table {display_name(table)}", "dynamodb:GetItem", arn_of(table)
        )
        document = _json(item.values.get("item"))
        if isinstance(document, dict):
            for name, attribute in document.items():
                value = (
                    next(iter(attribute.values()), None) if isinstance(attribute, dict) else None
                )
                yield _leak(item, name, value, holder, "item")


def _leak(resource: TfResource, key: Any, value: Any, holder: Holder, attribute: str) -> Leak:
    return Leak(resource, str(key), value, resource.at(attribute), holder)


def _mapping(
    resource: TfResource, variables: Any, holder: Holder, attribute: str
) -> Iterator[Leak]:
    if not isinstance(variables, dict):
        return
    lines = getattr(variables, "key_lines", {})
    for name, value in variables.items():
        where = Location(
            resource.location.path, lines.get(name, resource.values.line_of(attribute))
        )
        yield Leak(resource, str(name), value, where, holder)


_ASSIGNMENT = re.compile(
    r"""(?m)^\s*(?:export\s+|set\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*[=:]\s*["']?([^"'\s#]+)"""
)


def _script(
    resource: TfResource, text: str, holder: Holder, attribute: str = "user_data"
) -> Iterator[Leak]:
    """`NAME=value` lines of a script or config file, and bare AWS key ids."""
    where = resource.at(attribute)
    seen = False
    for match in _ASSIGNMENT.finditer(text):
        seen = True
        yield Leak(resource, match.group(1), match.group(2), where, holder)
    if not seen:
        for match in AWS_KEY_ID.finditer(text):
            yield Leak(resource, "an access key id", match.group(0), where, holder)


def _user_data(resource: TfResource) -> str:
    text = resource.values.get("user_data")
    if isinstance(text, str) and resource.type != "aws_launch_template":
        return text
    encoded = (
        text if resource.type == "aws_launch_template" else resource.values.get("user_data_base64")
    )
    if not isinstance(encoded, str):
        return ""
    try:
        return base64.b64decode(encoded, validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return encoded


def _containers(value: Any) -> list[dict[str, Any]]:
    document = _json(value)
    return [c for c in as_list(document) if isinstance(c, dict)]


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except (json.JSONDecodeError, RecursionError):
            return None
    return value
