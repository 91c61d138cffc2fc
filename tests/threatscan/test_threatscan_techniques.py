"""Each technique the issue lists is a named edge; its near miss (one thing different) is not."""

from __future__ import annotations

import json

import pytest
from threatscan_support import FIXTURES, scan_fixture

CASES = json.loads((FIXTURES / "techniques" / "cases.json").read_text())


def _edges(name: str, kind: str) -> set[tuple[str, str, str]]:
    report = scan_fixture(f"techniques/{name}/{kind}")
    assert report.skipped == []
    graph = report.graph
    assert graph is not None
    return {(e.source, e.target, e.technique) for e in graph.edges.values()}


@pytest.mark.parametrize("name", sorted(CASES))
def test_technique_is_a_named_edge(name: str) -> None:
    expect = CASES[name]
    wanted = (expect["source"], expect["target"], expect["technique"])
    assert wanted in _edges(name, "positive")


@pytest.mark.parametrize("name", sorted(CASES))
def test_near_miss_has_no_edge(name: str) -> None:
    expect = CASES[name]
    edges = _edges(name, "negative")
    assert not [
        e
        for e in edges
        if e[:2] == (expect["source"], expect["target"]) and e[2] == expect["technique"]
    ]


def test_every_technique_links_its_documentation_in_the_rule_help() -> None:
    from mezzo.threatscan.rules import RULES
    from mezzo.threatscan.techniques import TECHNIQUES

    help_text = RULES["MZ-PATH-005"].help_markdown
    for technique in TECHNIQUES.values():
        assert technique.source.startswith("https://")
        assert technique.source in help_text and technique.title in help_text


def test_every_edge_any_fixture_draws_is_a_catalogued_technique() -> None:
    from mezzo.threatscan.analyze import scan
    from mezzo.threatscan.techniques import technique_of

    techniques: set[str] = set()
    for folder in sorted(p.parent for p in FIXTURES.rglob("*") if p.is_file()):
        graph = scan(folder).graph
        assert graph is not None
        techniques |= {e.technique for e in graph.edges.values()}
    assert len(techniques) > 60
    assert sorted(t for t in techniques if technique_of(t) is None) == []


def test_docs_list_every_technique_with_its_source() -> None:
    from pathlib import Path

    from mezzo.threatscan.techniques import TECHNIQUES

    docs = (Path(__file__).parents[2] / "docs" / "threatscan.md").read_text()
    for technique in TECHNIQUES.values():
        assert technique.title in docs and technique.source in docs, technique.title
