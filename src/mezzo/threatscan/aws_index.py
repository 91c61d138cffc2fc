"""Terraform AWS resources: names, synthetic ARNs, look-up by reference, shared results."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from mezzo.threatscan.iam import (
    Policy,
    PolicyError,
    parse_policy_document,
)
from mezzo.threatscan.model import Finding
from mezzo.threatscan.privesc import Principal
from mezzo.threatscan.terraform import NAME_ATTRIBUTES, Ref, TfResource, synthetic_arn


@dataclass
class AwsResult:
    principals: list[Principal] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    node_roles: list[str] = field(default_factory=list)
    index: ResourceIndex | None = None


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


_ARN_SCOPE = re.compile(r"^(arn:[^:]*:[^:]*:)([^:]*):([^:]*):")


class ResourceIndex:
    """Resources of one root module by type, found by what a reference evaluates to.

    A reference to a resource (`aws_iam_role.x.arn`) finds exactly that resource; a literal
    name or ARN finds the resource of that type with that name in the same root module.
    """

    def __init__(self, resources: list[TfResource]) -> None:
        self.by_type: dict[str, list[TfResource]] = defaultdict(list)
        self._names: dict[tuple[str, str], TfResource] = {}
        self._addresses: dict[str, TfResource] = {}
        for resource in resources:
            if resource.mode != "resource":
                continue
            self.by_type[resource.type].append(resource)
            self._addresses[resource.address] = resource
            for key in (display_name(resource), arn_of(resource), resource.name):
                self._names.setdefault((resource.type, key), resource)

    def find(self, kind: str, reference: Any) -> TfResource | None:
        if not isinstance(reference, str):
            return None
        if isinstance(reference, Ref):
            found = self._addresses.get(reference.address)
            if found is not None and found.type == kind:
                return found
        found = self._names.get((kind, reference))
        if found is None and reference.startswith("arn:"):
            match = _ARN_SCOPE.match(reference)
            owner = match.group(3) if match else ""
            if owner == "aws":  # arn:aws:iam::aws:policy/... is AWS-managed, never the tree's
                return None
            if match:
                region = "{region}" if match.group(2) else ""
                account = "{account}" if owner else ""
                found = self._names.get(
                    (kind, _ARN_SCOPE.sub(rf"\g<1>{region}:{account}:", reference, count=1))
                )
            if found is None and kind.startswith("aws_iam_"):  # IAM ARNs may carry a path
                found = self._names.get((kind, reference.rsplit("/", 1)[-1]))
        return found


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def policy_attribute(resource: TfResource, key: str, name: str, result: AwsResult) -> Policy | None:
    value = resource.values.get(key)
    if value is None:
        return None
    try:
        return parse_policy_document(value, name, resource.at(key))
    except PolicyError as exc:
        result.notes.append(f"{resource.location}: {resource.address}.{key}: {exc}")
        return None


@dataclass
class Workload:
    resource: TfResource
    security_groups: list[str]
