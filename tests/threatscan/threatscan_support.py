"""Shared paths and helpers for the threat scanner's tests."""

from __future__ import annotations

from pathlib import Path

from mezzo.threatscan.analyze import Report, scan
from mezzo.threatscan.graph import Graph

FIXTURES = Path(__file__).parent / "fixtures"
SCHEMA = Path(__file__).parent / "data" / "sarif-schema-2.1.0.json"


def scan_fixture(relative: str, depth: str = "deep") -> Report:
    return scan(FIXTURES / relative, depth)


def edge_techniques(graph: Graph | None) -> set[tuple[str, str, str]]:
    """(source label, target label, technique) of every edge."""
    assert graph is not None
    return {
        (graph.nodes[e.source].label, graph.nodes[e.target].label, e.technique)
        for e in graph.edges.values()
    }


def rule_ids(report: Report) -> list[str]:
    return [f.rule.id for f in report.findings]
