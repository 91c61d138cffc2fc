"""SARIF 2.1.0 output for GitHub code scanning: rules with help, codeFlows for paths."""

from __future__ import annotations

import json
import posixpath
from typing import Any

from mezzo import __version__
from mezzo.threatscan.analyze import Report
from mezzo.threatscan.model import Finding, Location, Rule, Severity
from mezzo.threatscan.rules import RULES

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
FINGERPRINT_KEY = "mezzoFindingHash/v1"
LEVELS = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
}
SECURITY_SEVERITY = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "3.0",
}


def render(report: Report, uri_prefix: str = "") -> str:
    rules = sorted(RULES.values(), key=lambda r: r.id)
    index = {rule.id: i for i, rule in enumerate(rules)}
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": "mezzo-threatscan",
                "semanticVersion": __version__,
                "rules": [_rule(rule) for rule in rules],
            }
        },
        "invocations": [_invocation(report, uri_prefix)],
        "results": [_result(f, index[f.rule.id], uri_prefix) for f in report.findings],
        "columnKind": "utf16CodeUnits",
    }
    document = {"$schema": SCHEMA, "version": "2.1.0", "runs": [run]}
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _rule(rule: Rule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "name": rule.name,
        "shortDescription": {"text": rule.short},
        "fullDescription": {"text": rule.help},
        "help": {"text": rule.help, "markdown": rule.help_markdown},
        "defaultConfiguration": {"level": LEVELS[rule.severity]},
        "properties": {
            "tags": ["security", "attack-path" if rule.id.startswith("MZ-PATH") else "misconfig"],
            "precision": "high",
            "security-severity": SECURITY_SEVERITY[rule.severity],
        },
    }


def _physical(location: Location, uri_prefix: str) -> dict[str, Any]:
    return {
        "physicalLocation": {
            "artifactLocation": {"uri": posixpath.join(uri_prefix, location.path)},
            "region": {"startLine": max(1, location.line)},
        }
    }


def _result(finding: Finding, rule_index: int, uri_prefix: str) -> dict[str, Any]:
    result: dict[str, Any] = {
        "ruleId": finding.rule.id,
        "ruleIndex": rule_index,
        "level": LEVELS[finding.severity],
        "message": {"text": finding.message},
        "partialFingerprints": {FINGERPRINT_KEY: finding.fingerprint},
        "properties": {
            "severity": finding.severity.label,
            "security-severity": SECURITY_SEVERITY[finding.severity],
        },
    }
    if finding.location is not None:
        result["locations"] = [_physical(finding.location, uri_prefix)]
    if finding.steps:
        steps = []
        for order, step in enumerate(finding.steps, start=1):
            entry: dict[str, Any] = {"executionOrder": order, "nestingLevel": 0}
            location: dict[str, Any] = _physical(step.location, uri_prefix) if step.location else {}
            location["message"] = {"text": f"{step.label}: attacker {step.action}"}
            entry["location"] = location
            steps.append(entry)
        result["codeFlows"] = [
            {"message": {"text": finding.message}, "threadFlows": [{"locations": steps}]}
        ]
    return result


def _invocation(report: Report, uri_prefix: str) -> dict[str, Any]:
    notifications = [
        {
            "level": "warning",
            "message": {"text": f"skipped: {skipped.reason}"},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": posixpath.join(uri_prefix, skipped.path)}
                    }
                }
            ],
        }
        for skipped in report.skipped
    ] + [{"level": "note", "message": {"text": note}} for note in report.notes]
    return {"executionSuccessful": True, "toolExecutionNotifications": notifications}
