"""Run a scan: load every file, build one graph, collect findings and attack paths."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path

from mezzo.threatscan import aws, aws_data, iam_files, kubernetes, terraform
from mezzo.threatscan.graph import INTERNET, AttackPath, Graph, shortest_paths
from mezzo.threatscan.model import Edge, Finding, Location, NodeKind, Severity, Skipped, Step
from mezzo.threatscan.privesc import ADMIN_NODE, Principal
from mezzo.threatscan.rules import RULES
from mezzo.threatscan.sources import discover

DEPTHS = ("quick", "deep")
PATH_RULES = {
    NodeKind.ADMIN: "MZ-PATH-001",
    NodeKind.DATASTORE: "MZ-PATH-002",
    NodeKind.SECRET: "MZ-PATH-003",
    NodeKind.HOST: "MZ-PATH-004",
}
LONG_PATH = 5
ESCALATION_KINDS = frozenset({"can_escalate_to", "can_exec"})


@dataclass
class Report:
    target: str
    depth: str
    findings: list[Finding]
    skipped: list[Skipped]
    notes: list[str]
    stats: dict[str, int] = field(default_factory=dict)
    graph: Graph | None = field(default=None, repr=False, compare=False)


def scan(target: Path, depth: str = "deep") -> Report:
    if depth not in DEPTHS:
        raise ValueError(f"unknown depth {depth!r} (choose quick or deep)")
    if not target.exists():
        raise FileNotFoundError(f"target {target} does not exist")
    sources, skipped = discover(target)
    resources, tf_skipped = terraform.load(sources)
    documents, json_skipped = iam_files.parse_json_sources(sources)
    objects, yaml_skipped = kubernetes.load(sources, documents)
    skipped += tf_skipped + json_skipped + yaml_skipped

    graph = Graph()
    aws_result = aws.build(resources, graph)
    file_principals, file_findings, file_notes = iam_files.build(documents, graph)
    principals = aws_result.principals + file_principals
    aws.add_identity_edges(principals, graph, aws_result)
    aws_data.add_data_edges(principals, aws_data.data_targets(resources), graph)
    aws.add_workload_control_edges(principals, resources, graph)
    k8s_result = kubernetes.build(objects, graph)
    _link_irsa(k8s_result.irsa, principals, graph)

    findings = aws_result.findings + file_findings + k8s_result.findings
    if depth == "deep":
        findings += _path_findings(graph, principals)
    return Report(
        target=str(target),
        depth=depth,
        findings=_finalize(findings),
        skipped=sorted(set(skipped), key=lambda s: (s.path, s.reason)),
        notes=sorted(set(aws_result.notes + file_notes)),
        stats={
            "files": len(sources),
            "skipped": len(set(skipped)),
            "terraform_resources": len(resources),
            "kubernetes_objects": len(objects),
            "nodes": len(graph.nodes),
            "edges": len(graph.edges),
        },
        graph=graph,
    )


def _link_irsa(
    irsa: list[tuple[str, str, Location]], principals: list[Principal], graph: Graph
) -> None:
    """A service account annotated with eks.amazonaws.com/role-arn can assume that role."""
    for sa_id, role_arn, location in irsa:
        for principal in principals:
            if (principal.kind == "role" and role_arn in (principal.arn, principal.name)) or (
                principal.kind == "role" and role_arn.endswith(f":role/{principal.name}")
            ):
                graph.add_edge(
                    Edge(
                        sa_id,
                        principal.node_id,
                        "can_assume",
                        "irsa",
                        f"exchanges its token for role {principal.name} (IRSA)",
                        location,
                    )
                )


def _path_findings(graph: Graph, principals: list[Principal]) -> list[Finding]:
    # One-step exposures (a public bucket) are already single-resource findings.
    findings = [
        _path_finding(graph, path)
        for path in shortest_paths(graph, [INTERNET])
        if len(path.edges) >= 2
    ]
    users = sorted(p.node_id for p in principals if p.kind == "user")
    for path in shortest_paths(graph, users, require=ESCALATION_KINDS):
        if path.target == ADMIN_NODE and len(path.edges) >= 2:
            findings.append(_path_finding(graph, path, "MZ-PATH-005"))
    return findings


def _path_finding(graph: Graph, path: AttackPath, rule_id: str | None = None) -> Finding:
    end = graph.nodes[path.target]
    rule = RULES[rule_id or PATH_RULES[end.kind]]
    severity = rule.severity
    if len(path.edges) > LONG_PATH:
        severity = Severity(max(Severity.LOW, severity - 1))
    steps = (
        *tuple(
            Step(
                edge.source,
                graph.nodes[edge.source].label,
                edge.action,
                edge.location,
                edge.technique,
            )
            for edge in path.edges
        ),
        Step(end.id, end.label, "reaches the target", end.location or path.edges[-1].location),
    )
    names = [graph.nodes[e.source].label for e in path.edges] + [end.label]
    start = graph.nodes[path.source].label
    message = f"{start} reaches {end.label} in {len(path.edges)} steps: " + " -> ".join(names)
    location = next((e.location for e in path.edges if e.location), None)
    nodes = (*tuple(e.source for e in path.edges), end.id)
    finding = Finding(rule, message, location, severity, nodes, steps)
    techniques = "|".join(e.technique for e in path.edges)
    return replace(finding, fingerprint=_hash(rule.id, *nodes, techniques))


def _hash(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def _finalize(findings: list[Finding]) -> list[Finding]:
    unique: dict[tuple[str, str], Finding] = {}
    for item in findings:
        if not item.fingerprint:
            item = replace(item, fingerprint=_hash(item.rule.id, *item.nodes, item.message))
        unique.setdefault((item.rule.id, item.fingerprint), item)
    return sorted(
        unique.values(),
        key=lambda f: (
            -f.severity,
            not f.steps,
            f.rule.id,
            f.location.path if f.location else "",
            f.location.line if f.location else 0,
            f.message,
        ),
    )
