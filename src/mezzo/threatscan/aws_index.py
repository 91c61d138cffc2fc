"""Terraform AWS resources: names, synthetic ARNs, look-up by reference, shared results."""

from __future__ import annotations

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
from mezzo.threatscan.terraform import NAME_ATTRIBUTES, TfResource, synthetic_arn


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


class ResourceIndex:
    """Resources by type, found by what a reference evaluates to: label, name or ARN."""

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
