"""AWS network exposure: security groups, public instances, load balancers, databases."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from mezzo.threatscan.aws_index import (
    AwsResult,
    ResourceIndex,
    Workload,
    arn_of,
    as_list,
    display_name,
    node_id,
)
from mezzo.threatscan.graph import INTERNET, Graph
from mezzo.threatscan.model import Edge, Location, Node, NodeKind, Unknown
from mezzo.threatscan.rules import finding
from mezzo.threatscan.terraform import TfResource

WORLD = ("0.0.0.0/0", "::/0")
ADMIN_PORTS = (22, 3389)


@dataclass(frozen=True)
class _Ingress:
    location: Location
    from_port: int | None
    to_port: int | None
    protocol: str
    world: bool
    source_groups: tuple[str, ...]

    def covers(self, port: int) -> bool:
        if self.protocol in ("-1", "all") or self.from_port is None or self.to_port is None:
            return True
        return self.from_port <= port <= self.to_port or (self.from_port == 0 == self.to_port)


def _ingress_rules(index: ResourceIndex) -> dict[str, list[_Ingress]]:
    rules: dict[str, list[_Ingress]] = defaultdict(list)

    def port(value: Any) -> int | None:
        return value if isinstance(value, int) else None

    def is_world(*cidrs: Any) -> bool:
        return any(isinstance(c, Unknown) or c in WORLD for c in cidrs)

    for group in index.by_type["aws_security_group"]:
        for rule in as_list(group.values.get("ingress")):
            cidrs = as_list(rule.get("cidr_blocks")) + as_list(rule.get("ipv6_cidr_blocks"))
            rules[node_id(group)].append(
                _Ingress(
                    Location(group.location.path, rule.line),
                    port(rule.get("from_port")),
                    port(rule.get("to_port")),
                    str(rule.get("protocol", "tcp")),
                    is_world(*cidrs),
                    tuple(str(s) for s in as_list(rule.get("security_groups"))),
                )
            )
    for rule in index.by_type["aws_security_group_rule"]:
        group = index.find("aws_security_group", rule.values.get("security_group_id"))
        if group is None or rule.values.get("type") != "ingress":
            continue
        cidrs = as_list(rule.values.get("cidr_blocks")) + as_list(
            rule.values.get("ipv6_cidr_blocks")
        )
        source = rule.values.get("source_security_group_id")
        rules[node_id(group)].append(
            _Ingress(
                rule.location,
                port(rule.values.get("from_port")),
                port(rule.values.get("to_port")),
                str(rule.values.get("protocol", "tcp")),
                is_world(*cidrs),
                (str(source),) if source else (),
            )
        )
    for rule in index.by_type["aws_vpc_security_group_ingress_rule"]:
        group = index.find("aws_security_group", rule.values.get("security_group_id"))
        if group is None:
            continue
        source = rule.values.get("referenced_security_group_id")
        rules[node_id(group)].append(
            _Ingress(
                rule.location,
                port(rule.values.get("from_port")),
                port(rule.values.get("to_port")),
                str(rule.values.get("ip_protocol", "tcp")),
                is_world(rule.values.get("cidr_ipv4"), rule.values.get("cidr_ipv6")),
                (str(source),) if source else (),
            )
        )
    return rules


def network(
    index: ResourceIndex, workloads: list[Workload], graph: Graph, result: AwsResult
) -> None:
    rules = _ingress_rules(index)
    for group in index.by_type["aws_security_group"]:
        for rule in rules.get(node_id(group), []):
            if rule.world and any(rule.covers(p) for p in ADMIN_PORTS):
                what = "every port" if rule.protocol in ("-1", "all") else "an administrative port"
                result.findings.append(
                    finding(
                        "MZ-AWS-001",
                        f"Security group {display_name(group)} opens {what} to the internet",
                        rule.location,
                        (node_id(group),),
                    )
                )

    def open_rule(references: list[Any]) -> _Ingress | None:
        for reference in references:
            if isinstance(reference, Unknown):
                return _Ingress(Location("", 0), None, None, "-1", True, ())
            group = index.find("aws_security_group", reference)
            for rule in rules.get(node_id(group), []) if group else []:
                if rule.world:
                    return rule
        return None

    public_ips = {
        str(eip.values.get("instance"))
        for eip in index.by_type["aws_eip"]
        if isinstance(eip.values.get("instance"), str)
    }
    by_instance: dict[str, Workload] = {node_id(w.resource): w for w in workloads}
    for workload in workloads:
        instance = workload.resource
        if instance.type != "aws_instance":
            continue
        public = instance.values.get("associate_public_ip_address") is True or any(
            index.find("aws_instance", ip) is instance for ip in public_ips
        )
        rule = open_rule(workload.security_groups) if public else None
        if rule is not None:
            where = rule.location if rule.location.path else instance.location
            graph.add_edge(
                Edge(
                    INTERNET,
                    node_id(instance),
                    "exposes",
                    "public-instance",
                    f"reaches instance {display_name(instance)} on its public IP "
                    "through an open security group",
                    where,
                )
            )
    _load_balancers(index, rules, by_instance, graph)
    _database_reach(index, rules, workloads, graph, result)


def _load_balancers(
    index: ResourceIndex,
    rules: dict[str, list[_Ingress]],
    by_instance: dict[str, Workload],
    graph: Graph,
) -> None:
    target_groups: dict[str, list[TfResource]] = defaultdict(list)
    for attachment in index.by_type["aws_lb_target_group_attachment"]:
        group = index.find("aws_lb_target_group", attachment.values.get("target_group_arn"))
        instance = index.find("aws_instance", attachment.values.get("target_id"))
        if group and instance and node_id(instance) in by_instance:
            target_groups[node_id(group)].append(instance)
    for lb_type in ("aws_lb", "aws_alb"):
        for balancer in index.by_type[lb_type]:
            if balancer.values.get("internal") is True:
                continue
            groups = as_list(balancer.values.get("security_groups"))
            is_network = balancer.values.get("load_balancer_type") == "network"
            opened = any(
                isinstance(g, Unknown)
                or any(
                    r.world
                    for r in rules.get(
                        node_id(index.find("aws_security_group", g))
                        if index.find("aws_security_group", g)
                        else "",
                        [],
                    )
                )
                for g in groups
            )
            if not (opened or is_network or not groups):
                continue
            targets: list[tuple[TfResource, Location]] = []
            for listener in index.by_type["aws_lb_listener"] + index.by_type["aws_alb_listener"]:
                if (
                    index.find(balancer.type, listener.values.get("load_balancer_arn"))
                    is not balancer
                ):
                    continue
                for action in as_list(listener.values.get("default_action")):
                    group = index.find("aws_lb_target_group", action.get("target_group_arn"))
                    for instance in target_groups.get(node_id(group), []) if group else []:
                        targets.append((instance, listener.location))
            if not targets:
                continue
            graph.add_node(
                Node(
                    node_id(balancer),
                    NodeKind.ENTRY,
                    f"internet-facing load balancer {display_name(balancer)}",
                    balancer.location,
                )
            )
            graph.add_edge(
                Edge(
                    INTERNET,
                    node_id(balancer),
                    "exposes",
                    "internet-facing-lb",
                    f"sends requests to load balancer {display_name(balancer)}",
                    balancer.at("internal"),
                )
            )
            for instance, where in targets:
                graph.add_edge(
                    Edge(
                        node_id(balancer),
                        node_id(instance),
                        "exposes",
                        "lb-target",
                        f"is forwarded to instance {display_name(instance)}",
                        where,
                    )
                )


def _database_reach(
    index: ResourceIndex,
    rules: dict[str, list[_Ingress]],
    workloads: list[Workload],
    graph: Graph,
    result: AwsResult,
) -> None:
    for db_type in ("aws_db_instance", "aws_rds_cluster"):
        for database in index.by_type[db_type]:
            db_node = Node(
                node_id(database),
                NodeKind.DATASTORE,
                f"database {display_name(database)}",
                database.location,
            )
            graph.add_node(db_node)
            groups = [
                index.find("aws_security_group", g)
                for g in as_list(database.values.get("vpc_security_group_ids"))
            ]
            db_rules = [r for g in groups if g for r in rules.get(node_id(g), [])]
            if database.values.get("publicly_accessible") is True:
                result.findings.append(
                    finding(
                        "MZ-AWS-003",
                        f"Database {display_name(database)} is publicly accessible",
                        database.at("publicly_accessible"),
                        (node_id(database),),
                    )
                )
                world = next((r for r in db_rules if r.world), None)
                if world is not None:
                    graph.add_edge(
                        Edge(
                            INTERNET,
                            node_id(database),
                            "can_reach",
                            "public-database",
                            f"connects to database {display_name(database)} from the internet",
                            world.location,
                        )
                    )
            for workload in workloads if db_rules else []:
                names = set()
                for reference in workload.security_groups:
                    group = index.find("aws_security_group", reference)
                    if group:
                        names |= {group.name, display_name(group), arn_of(group)}
                for rule in db_rules:
                    if names & set(rule.source_groups):
                        graph.add_edge(
                            Edge(
                                node_id(workload.resource),
                                node_id(database),
                                "can_reach",
                                "security-group-reference",
                                f"connects to database {display_name(database)} "
                                "(its security group admits this workload's group)",
                                rule.location,
                            )
                        )
                        break
