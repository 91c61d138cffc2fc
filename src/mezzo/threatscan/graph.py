"""The resource graph and the search for attack paths over it (pure, deterministic)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
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


State = tuple[str, bool]  # (node, an edge of the required kind used already)


def shortest_paths(
    graph: Graph,
    sources: list[str],
    max_hops: int = 12,
    require: frozenset[str] | None = None,
    is_target: Callable[[str, str], bool] | None = None,
) -> list[AttackPath]:
    """The shortest path from each source to each target it reaches: one per (source, target).

    Targets are crown jewels, and the nodes `is_target(source, node)` names; a path ends at the
    first crown jewel it meets (a jewel is not a stepping stone). With `require`, only paths
    that use an edge of a kind in `require` count (a search over [not used yet, used]). Paths
    made only of certain edges win over shorter ones through an unresolved value (an edge with
    `depends`). Ties are broken by the sorted order of edges: the result is deterministic.
    """
    table = graph.outgoing()
    certain_table = {node: [e for e in edges if not e.depends] for node, edges in table.items()}
    found: list[AttackPath] = []
    for source in sources:
        reached: dict[str, tuple[Edge, ...]] = {}
        for edges in (certain_table, table):
            for target, path in _search(graph, edges, source, max_hops, require, is_target):
                reached.setdefault(target, path)
        found.extend(AttackPath(path) for _, path in sorted(reached.items()))
    return found


def _search(
    graph: Graph,
    table: dict[str, list[Edge]],
    source: str,
    max_hops: int,
    require: frozenset[str] | None,
    is_target: Callable[[str, str], bool] | None,
) -> list[tuple[str, tuple[Edge, ...]]]:
    start: State = (source, require is None)
    parents: dict[State, tuple[State, Edge] | None] = {start: None}
    queue = deque([(start, 0)])
    found: list[tuple[str, tuple[Edge, ...]]] = []
    while queue:
        state, depth = queue.popleft()
        node_id, satisfied = state
        node = graph.nodes[node_id]
        if (
            depth > 0
            and satisfied
            and (node.is_crown_jewel or (is_target and is_target(source, node_id)))
        ):
            found.append((node_id, _walk_back(parents, state)))
        if node.is_crown_jewel and depth > 0:
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


def _walk_back(parents: dict[State, tuple[State, Edge] | None], state: State) -> tuple[Edge, ...]:
    edges: list[Edge] = []
    link = parents[state]
    while link is not None:
        previous, edge = link
        edges.append(edge)
        link = parents[previous]
    return tuple(reversed(edges))
