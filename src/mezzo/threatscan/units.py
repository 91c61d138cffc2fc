"""Deployment units: what is analysed together, so that separate deployments never link.

A Terraform root module is one deployment: scanning a repository of many scenario folders from
its root gives each folder the findings it gets alone. Kubernetes manifests and IAM JSON belong
to the nearest root module at or above their directory; an account dump
(`get-account-authorization-details`) is an account, and a unit, of its own. Files under no root module form one
more unit (one cluster, one account) when the tree has several roots; an IRSA annotation there
that names a role of a root module brings that module into the unit, since the ARN names it.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import Any

from mezzo.threatscan.kubernetes import IRSA_ANNOTATION, K8sObject
from mezzo.threatscan.terraform import TfResource

UNROOTED = "\x00unrooted"


@dataclass
class Unit:
    key: str
    resources: list[TfResource] = field(default_factory=list)
    documents: dict[str, list[Any]] = field(default_factory=dict)
    objects: list[K8sObject] = field(default_factory=list)


def partition(
    resources: list[TfResource], documents: dict[str, list[Any]], objects: list[K8sObject]
) -> list[Unit]:
    roots = sorted({r.unit for r in resources})
    units: dict[str, Unit] = {root: Unit(root) for root in roots}

    def unit_of(path: str) -> Unit:
        directory = posixpath.dirname(path)
        while True:
            if directory in units and directory != UNROOTED:
                return units[directory]
            if not directory:
                break
            directory = posixpath.dirname(directory)
        key = roots[0] if len(roots) == 1 else ("" if not roots else UNROOTED)
        return units.setdefault(key, Unit(key))

    for resource in resources:
        units[resource.unit].resources.append(resource)
    for path in sorted(documents):
        if any(_is_account_dump(d) for d in documents[path]):
            units.setdefault(path, Unit(path)).documents[path] = documents[path]
        else:
            unit_of(path).documents[path] = documents[path]
    for obj in objects:
        unit_of(obj.path).objects.append(obj)
    unrooted = units.get(UNROOTED)
    if unrooted is not None:
        _bring_in_irsa_roles(unrooted, [units[root] for root in roots])
    return [units[key] for key in sorted(units)]


def _is_account_dump(document: Any) -> bool:
    """`aws iam get-account-authorization-details` output: a whole account of its own."""
    return isinstance(document, dict) and (
        "UserDetailList" in document or "RoleDetailList" in document
    )


def _bring_in_irsa_roles(unrooted: Unit, roots: list[Unit]) -> None:
    names = set()
    for obj in unrooted.objects:
        annotations = obj.body.get("metadata", {})
        annotations = annotations.get("annotations") if isinstance(annotations, dict) else None
        arn = annotations.get(IRSA_ANNOTATION) if isinstance(annotations, dict) else None
        if obj.kind == "ServiceAccount" and isinstance(arn, str):
            names.add(arn.rsplit("/", 1)[-1])
    for root in roots:
        if any(r.type == "aws_iam_role" and r.display in names for r in root.resources):
            unrooted.resources.extend(root.resources)
