"""The resource graph and the search for attack paths over it (pure, deterministic)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from mezzo.threatscan.model import Edge, Node, NodeKind

INTERNET = "internet"


@dataclass
class Graph:
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: dict[tuple[str, str, str], Edge] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.add_node(Node(INTERNET, NodeKind.INTERNET, "the internet"))

    def add_node(self, node: Node) -> Node:
        return self.nodes.setdefault(node.id, node)

    def add_edge(self, edge: Edge) -> None:
        if edge.source == edge.target:
            return
        if edge.source not in self.nodes or edge.target not in self.nodes:
            raise KeyError(f"edge {edge.source} -> {edge.target} names an unknown node")
        self.edges.setdefault((edge.source, edge.target, edge.technique), edge)

    def outgoing(self) -> dict[str, list[Edge]]:
        table: dict[str, list[Edge]] = {}
        for key in sorted(self.edges):
            edge = self.edges[key]
            table.setdefault(edge.source, []).append(edge)
        return table


@dataclass(frozen=True)
class AttackPath:
    edges: tuple[Edge, ...]

    @property
    def target(self) -> str:
        return self.edges[-1].target

    @property
    def source(self) -> str:
        return self.edges[0].source


def shortest_paths(
    graph: Graph,
    sources: list[str],
    max_hops: int = 12,
    require: frozenset[str] | None = None,
) -> list[AttackPath]:
    """One shortest path from each source to every crown jewel it reaches.

    A path ends at the first crown jewel it meets. Ties are broken by the sorted order of
    edges, so the result is deterministic. With `require`, only paths using an edge of that
    kind in `require` are kept (searched over a product graph: [not used yet, used]).
    """
    table = graph.outgoing()
    found: list[AttackPath] = []
    seen: set[tuple[Edge, ...]] = set()
    for source in sources:
        start = (source, require is None)
        parents: dict[tuple[str, bool], tuple[tuple[str, bool], Edge] | None] = {start: None}
        queue = deque([(start, 0)])
        while queue:
            state, depth = queue.popleft()
            node_id, satisfied = state
            node = graph.nodes[node_id]
            if node.is_crown_jewel and depth > 0:
                if satisfied:
                    path = _walk_back(parents, state)
                    if path not in seen:
                        seen.add(path)
                        found.append(AttackPath(path))
                continue
            if depth >= max_hops:
                continue
            for edge in table.get(node_id, []):
                next_state = (
                    edge.target,
                    satisfied or (require is not None and edge.kind in require),
                )
                if next_state not in parents:
                    parents[next_state] = (state, edge)
                    queue.append((next_state, depth + 1))
    return found


def _walk_back(
    parents: dict[tuple[str, bool], tuple[tuple[str, bool], Edge] | None], state: tuple[str, bool]
) -> tuple[Edge, ...]:
    edges: list[Edge] = []
    link = parents[state]
    while link is not None:
        previous, edge = link
        edges.append(edge)
        link = parents[previous]
    return tuple(reversed(edges))
