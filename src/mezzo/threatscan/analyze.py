"""Run a scan: load every file, build one graph, collect findings and attack paths."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

from mezzo.threatscan import aws, aws_data, helm, iam_files, kubernetes, terraform
from mezzo.threatscan.aws_control import add_workload_control_edges
from mezzo.threatscan.aws_credentials import add_credential_edges
from mezzo.threatscan.graph import INTERNET, AttackPath, Graph, shortest_paths
from mezzo.threatscan.model import Edge, Finding, Location, NodeKind, Severity, Skipped, Step
from mezzo.threatscan.parsing import parse_all
from mezzo.threatscan.privesc import Principal
from mezzo.threatscan.rules import RULES, depends_note, finding
from mezzo.threatscan.sources import discover
from mezzo.threatscan.units import Unit, partition

DEPTHS = ("quick", "deep")
PATH_RULES = {
    NodeKind.ADMIN: "MZ-PATH-001",
    NodeKind.DATASTORE: "MZ-PATH-002",
    NodeKind.SECRET: "MZ-PATH-003",
    NodeKind.HOST: "MZ-PATH-004",
}
LONG_PATH = 5
ESCALATION_KINDS = frozenset({"can_escalate_to", "can_exec", "uses_credentials"})
# from a compromised pod, using its service account's RBAC to become admin or reach the node
# counts as well (its plain reads of Secrets are the single finding MZ-K8S-005)
IN_CLUSTER_KINDS = ESCALATION_KINDS | {"administers", "can_mount_host"}


@dataclass
class Report:
    target: str
    depth: str
    findings: list[Finding]
    skipped: list[Skipped]
    notes: list[str]
    stats: dict[str, int] = field(default_factory=dict)
    graph: Graph | None = field(default=None, repr=False, compare=False)


def summary(report: Report) -> str:
    counts = Counter(f.severity for f in report.findings)
    parts = [f"{counts[s]} {s.label}" for s in sorted(counts, reverse=True)]
    detail = f" ({', '.join(parts)})" if parts else ""
    return (
        f"{len(report.findings)} findings{detail} in {report.stats.get('files', 0)} files, "
        f"{len(report.skipped)} skipped ({report.depth} scan)"
    )


def scan(target: Path, depth: str = "deep", cache: Path | None = None) -> Report:
    if depth not in DEPTHS:
        raise ValueError(f"unknown depth {depth!r} (choose quick or deep)")
    if not target.exists():
        raise FileNotFoundError(f"target {target} does not exist")
    sources, skipped = discover(target)
    root = target.resolve()
    sources, chart_notes = helm.render(root if root.is_dir() else root.parent, sources)
    skipped += chart_notes
    parsed = parse_all(sources, cache)
    resources, tf_skipped = terraform.load(sources, parsed)
    documents, json_skipped = iam_files.json_documents(sources, parsed)
    objects, yaml_skipped = kubernetes.load(sources, parsed)
    skipped += tf_skipped + json_skipped + yaml_skipped

    combined = Graph()
    findings: list[Finding] = []
    notes: list[str] = []
    for unit in partition(resources, documents, objects):
        graph, unit_findings, unit_notes = _analyze(unit, depth)
        findings += unit_findings
        notes += unit_notes
        for node in graph.nodes.values():
            combined.add_node(node)
        combined.edges.update(graph.edges)
    return Report(
        target=str(target),
        depth=depth,
        findings=_finalize(findings),
        skipped=sorted(set(skipped), key=lambda s: (s.path, s.reason)),
        notes=sorted(set(notes)),
        stats={
            "files": len(sources),
            "skipped": len(set(skipped)),
            "terraform_resources": len(resources),
            "kubernetes_objects": len(objects),
            "nodes": len(combined.nodes),
            "edges": len(combined.edges),
        },
        graph=combined,
    )


def _analyze(unit: Unit, depth: str) -> tuple[Graph, list[Finding], list[str]]:
    """One deployment unit on its own graph: nothing links across units."""
    graph = Graph()
    aws_result = aws.build(unit.resources, graph)
    file_principals, file_findings, file_notes = iam_files.build(unit.documents, graph)
    principals = aws_result.principals + file_principals
    aws.add_identity_edges(principals, graph, aws_result)
    aws_data.add_data_edges(principals, aws_data.data_targets(unit.resources), graph)
    add_workload_control_edges(principals, unit.resources, graph)
    if aws_result.index is not None:
        add_credential_edges(aws_result.index, principals, graph, aws_result)
    k8s_result = kubernetes.build(unit.objects, graph)
    _link_irsa(k8s_result.irsa, principals, graph)
    findings = aws_result.findings + file_findings + k8s_result.findings
    if depth == "deep":
        findings += _path_findings(graph, principals, k8s_result.pods)
    return graph, findings, aws_result.notes + file_notes


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


def _path_findings(graph: Graph, principals: list[Principal], pods: list[str]) -> list[Finding]:
    """Attack paths from the internet, from every principal and from inside the cluster.

    From the internet every reachable crown jewel counts (one-step exposures are single
    findings already). From a principal or a compromised pod, a path counts only when it uses
    an escalation step: what a role may do with its own permissions is not an attack path.
    """
    findings = [
        _path_finding(graph, path)
        for path in shortest_paths(graph, [INTERNET])
        if len(path.edges) >= 2
    ]
    by_node = {p.node_id: p for p in principals}
    starts = sorted(p.node_id for p in principals if p.kind in ("user", "role"))

    powers = {p.node_id: _powers(p) for p in principals if p.kind in ("user", "role")}

    def more_privileged(start: str, node: str) -> bool:
        """A role that may certainly do, on any resource, a sensitive action the start may not."""
        role = by_node.get(node)
        if role is None or role.kind != "role" or start not in powers:
            return False
        return bool(powers[node][0] - powers[start][1])

    inside = shortest_paths(graph, starts, require=ESCALATION_KINDS, is_target=more_privileged)
    inside += shortest_paths(graph, sorted(pods), require=IN_CLUSTER_KINDS)
    through = {(p.source, e.source) for p in inside for e in p.edges[1:]}
    for path in inside:
        to_role = graph.nodes[path.target].kind == NodeKind.IDENTITY
        if to_role and (path.source, path.target) in through:
            continue  # a path through that role to a crown jewel says it already
        if len(path.edges) >= 2:
            findings.append(_path_finding(graph, path, "MZ-PATH-005"))
        elif to_role:
            findings.append(_role_escalation(graph, path.edges[0]))
    return findings


def _role_escalation(graph: Graph, edge: Edge) -> Finding:
    source, target = graph.nodes[edge.source], graph.nodes[edge.target]
    return finding(
        "MZ-AWS-007",
        f"{source.label} can act as {target.label}, which may do more than it: {edge.action} "
        f"({edge.technique})" + depends_note(edge.depends),
        edge.location,
        (edge.source, edge.target),
        Severity.LOW if edge.depends else Severity.MEDIUM,
    )


PRIVILEGE_PROBES = (
    "iam:PassRole",
    "iam:CreateUser",
    "sts:AssumeRole",
    "ec2:RunInstances",
    "ssm:SendCommand",
    "lambda:UpdateFunctionCode",
    "ecs:RunTask",
    "cloudformation:CreateStack",
    "s3:GetObject",
    "s3:PutObject",
    "dynamodb:Scan",
    "kms:Decrypt",
    "secretsmanager:GetSecretValue",
    "rds:ModifyDBInstance",
    "eks:DescribeCluster",
)


def _powers(principal: Principal) -> tuple[frozenset[str], frozenset[str]]:
    """The probe actions it may certainly do on any resource, and those it may do at all."""
    probe = "arn:aws:mezzo:{region}:{account}:mezzo-any/mezzo-any"
    decisions = {action: principal.can(action, probe) for action in PRIVILEGE_PROBES}
    return (
        frozenset(a for a, d in decisions.items() if d.certain and not d.conditional),
        frozenset(a for a, d in decisions.items() if d.allowed),
    )


INSIDER_SEVERITY = {
    NodeKind.ADMIN: Severity.HIGH,
    NodeKind.HOST: Severity.HIGH,
    NodeKind.SECRET: Severity.MEDIUM,
    NodeKind.DATASTORE: Severity.MEDIUM,
    NodeKind.IDENTITY: Severity.LOW,
}


def _path_finding(graph: Graph, path: AttackPath, rule_id: str | None = None) -> Finding:
    end = graph.nodes[path.target]
    rule = RULES[rule_id or PATH_RULES[end.kind]]
    severity = INSIDER_SEVERITY[end.kind] if rule_id else rule.severity
    if len(path.edges) > LONG_PATH:
        severity = Severity(max(Severity.LOW, severity - 1))
    depends = tuple(dict.fromkeys(name for e in path.edges for name in e.depends))
    if depends:
        severity = Severity.LOW
    steps = (
        *tuple(
            Step(
                edge.source,
                graph.nodes[edge.source].label,
                edge.action + depends_note(edge.depends),
                edge.location,
                edge.technique,
            )
            for edge in path.edges
        ),
        Step(end.id, end.label, "reaches the target", end.location or path.edges[-1].location),
    )
    names = [graph.nodes[e.source].label for e in path.edges] + [end.label]
    start = graph.nodes[path.source].label
    message = (
        f"{start} reaches {end.label} in {len(path.edges)} steps: "
        + " -> ".join(names)
        + depends_note(depends)
    )
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
            len(f.steps),
            f.rule.id,
            f.location.path if f.location else "",
            f.location.line if f.location else 0,
            f.message,
        ),
    )
