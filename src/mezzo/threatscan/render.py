"""Text (rich, coloured on a terminal) and JSON renderings of a scan report."""

from __future__ import annotations

import io
import json
from typing import Any

from rich.console import Console
from rich.markup import escape

from mezzo.threatscan.analyze import Report, summary
from mezzo.threatscan.model import Finding, Severity

STYLES = {
    Severity.CRITICAL: "bold white on red",
    Severity.HIGH: "bold red",
    Severity.MEDIUM: "yellow",
    Severity.LOW: "cyan",
}


def text(report: Report, color: bool = False, width: int = 100) -> str:
    buffer = io.StringIO()
    console = Console(
        file=buffer,
        force_terminal=color,
        no_color=not color,
        width=width,
        highlight=False,
        soft_wrap=True,
    )
    console.print(f"[bold]mezzo scan[/bold]: {escape(summary(report))}")
    for finding in report.findings:
        _finding(console, finding)
    if report.skipped:
        console.print("\n[bold]Skipped files[/bold]")
        for skipped in report.skipped:
            console.print(f"  {escape(skipped.path)}: {escape(skipped.reason)}")
    if report.notes:
        console.print("\n[bold]Notes[/bold]")
        for note in report.notes:
            console.print(f"  {escape(note)}")
    return buffer.getvalue()


def _finding(console: Console, finding: Finding) -> None:
    style = STYLES[finding.severity]
    where = str(finding.location) if finding.location else "-"
    console.print(
        f"\n[{style}]{finding.severity.label.upper():<8}[/{style}] [bold]{finding.rule.id}[/bold]"
        f" {escape(finding.rule.short)}"
    )
    console.print(f"  {escape(where)}  {escape(finding.message)}")
    for number, step in enumerate(finding.steps, start=1):
        step_where = str(step.location) if step.location else "-"
        console.print(
            f"    {number}. [dim]{escape(step_where)}[/dim]  {escape(step.label)}: "
            f"attacker {escape(step.action)}"
        )
    console.print(f"  [dim]fingerprint {finding.fingerprint}[/dim]")


def as_json(report: Report) -> str:
    def location(value: Any) -> dict[str, Any] | None:
        return {"path": value.path, "line": value.line} if value else None

    document = {
        "tool": "mezzo-threatscan",
        "format": 1,
        "target": report.target,
        "depth": report.depth,
        "summary": summary(report),
        "stats": report.stats,
        "findings": [
            {
                "rule": f.rule.id,
                "name": f.rule.name,
                "severity": f.severity.label,
                "message": f.message,
                "location": location(f.location),
                "fingerprint": f.fingerprint,
                "nodes": list(f.nodes),
                "steps": [
                    {
                        "node": s.node,
                        "label": s.label,
                        "action": s.action,
                        "location": location(s.location),
                    }
                    for s in f.steps
                ],
            }
            for f in report.findings
        ],
        "skipped": [{"path": s.path, "reason": s.reason} for s in report.skipped],
        "notes": report.notes,
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
