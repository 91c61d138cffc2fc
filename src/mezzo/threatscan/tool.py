"""The scanner as a server-side tool for agents: a compact, deterministic text report."""

from __future__ import annotations

from pathlib import Path

from mezzo.threatscan.analyze import DEPTHS, scan
from mezzo.threatscan.render import summary

TOOL_DESCRIPTION = (
    "Scan Terraform, IAM policy JSON and Kubernetes manifests under a directory for "
    "misconfigurations and chained attack paths (internet -> workload -> identity -> data/admin). "
    "Offline and deterministic."
)
TOOL_PARAMETERS = {
    "type": "object",
    "properties": {
        "target": {"type": "string", "description": "Directory or file to scan."},
        "depth": {
            "type": "string",
            "enum": list(DEPTHS),
            "description": "quick: single-resource findings; deep: also attack paths.",
        },
        "max_findings": {"type": "integer", "minimum": 1, "default": 20},
    },
    "required": ["target"],
    "additionalProperties": False,
}


def scan_for_agent(target: str, depth: str = "deep", max_findings: int = 20) -> str:
    """Scan `target` and return a short plain-text report (errors are returned, not raised)."""
    if depth not in DEPTHS:
        return f"error: depth must be one of {', '.join(DEPTHS)}"
    if max_findings < 1:
        return "error: max_findings must be at least 1"
    try:
        report = scan(Path(target), depth)
    except (OSError, ValueError) as exc:
        return f"error: {exc}"
    lines = [summary(report)]
    for finding in report.findings[:max_findings]:
        where = f" at {finding.location}" if finding.location else ""
        lines.append(
            f"- [{finding.severity.label}] {finding.rule.id} {finding.rule.short}{where}: "
            f"{finding.message}"
        )
        for number, step in enumerate(finding.steps[:-1], start=1):
            step_where = f" ({step.location})" if step.location else ""
            lines.append(f"    {number}. {step.label}{step_where}: {step.action}")
    hidden = len(report.findings) - max_findings
    if hidden > 0:
        lines.append(f"... {hidden} more findings not shown")
    for skipped in report.skipped[:10]:
        lines.append(f"skipped {skipped.path}: {skipped.reason}")
    return "\n".join(lines) + "\n"
