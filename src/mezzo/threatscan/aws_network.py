"""AWS network exposure: security groups, public instances, load balancers, databases."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_network
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
from mezzo.threatscan.model import Edge, Location, Node, NodeKind, Severity, Unknown
from mezzo.threatscan.rules import depends_note, finding
from mezzo.threatscan.terraform import TfResource

WORLD = ("0.0.0.0/0", "::/0")
ADMIN_PORTS = (22, 3389)
_PROTOCOLS = {"-1": "all", "all": "all", "6": "tcp", "17": "udp", "1": "icmp", "58": "icmpv6"}
NO_PAYLOAD = ("icmp", "icmpv6")  # echo and errors: no service to exploit behind them


@dataclass(frozen=True)
class _Ingress:
    location: Location
    from_port: int | None
    to_port: int | None
    protocol: str  # all | tcp | udp | icmp | icmpv6 | a protocol number
    world: bool  # a literal 0.0.0.0/0 or ::/0
    depends: tuple[str, ...]  # unresolved sources (var.x) that might be the internet
    cidrs: tuple[str, ...]  # the known CIDR sources
    source_groups: tuple[str, ...]

    @property
    def reaches_services(self) -> bool:
        return self.protocol not in NO_PAYLOAD

    @property
    def maybe_world(self) -> bool:
        return self.world or bool(self.depends)

    def covers(self, port: int, protocol: str = "tcp") -> bool:
        if self.protocol == "all":
            return True
        if self.protocol != protocol:
            return False
        if self.from_port is None or self.to_port is None:
            return True  # unresolved ports: the rule's depends already says so
        return self.from_port <= port <= self.to_port


def _port(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _ingress(
    location: Location,
    from_port: Any,
    to_port: Any,
    protocol: Any,
    cidrs: list[Any],
    source_groups: tuple[str, ...],
) -> _Ingress:
    unknowns = [v for v in (from_port, to_port, protocol, *cidrs) if isinstance(v, Unknown)]
    cidr_unknowns = [c for c in cidrs if isinstance(c, Unknown)]
    world = any(c in WORLD for c in cidrs)
    known = tuple(str(c) for c in cidrs if isinstance(c, str))
    name = _PROTOCOLS.get(str(protocol).lower(), str(protocol).lower())
    if isinstance(protocol, Unknown):
        name = "all"
    depends: tuple[str, ...] = ()
    if cidr_unknowns and not world:
        depends = tuple(dict.fromkeys(n for u in unknowns for n in u.depends))
    return _Ingress(
        location, _port(from_port), _port(to_port), name, world, depends, known, source_groups
    )


def _ingress_rules(index: ResourceIndex) -> dict[str, list[_Ingress]]:
    rules: dict[str, list[_Ingress]] = defaultdict(list)
    for group in index.by_type["aws_security_group"]:
        for rule in as_list(group.values.get("ingress")):
            if not isinstance(rule, dict):
                continue
            cidrs = as_list(rule.get("cidr_blocks")) + as_list(rule.get("ipv6_cidr_blocks"))
            rules[node_id(group)].append(
                _ingress(
                    Location(group.location.path, getattr(rule, "line", group.location.line)),
                    rule.get("from_port"),
                    rule.get("to_port"),
                    rule.get("protocol", "tcp"),
                    cidrs,
                    tuple(str(s) for s in as_list(rule.get("security_groups"))),
                )
            )
    for rule in index.by_type["aws_security_group_rule"]:
        owner = index.find("aws_security_group", rule.values.get("security_group_id"))
        if owner is None or rule.values.get("type") != "ingress":
            continue
        cidrs = as_list(rule.values.get("cidr_blocks")) + as_list(
            rule.values.get("ipv6_cidr_blocks")
        )
        source = rule.values.get("source_security_group_id")
        rules[node_id(owner)].append(
            _ingress(
                rule.location,
                rule.values.get("from_port"),
                rule.values.get("to_port"),
                rule.values.get("protocol", "tcp"),
                cidrs,
                (str(source),) if source else (),
            )
        )
    for rule in index.by_type["aws_vpc_security_group_ingress_rule"]:
        owner = index.find("aws_security_group", rule.values.get("security_group_id"))
        if owner is None:
            continue
        source = rule.values.get("referenced_security_group_id")
        cidrs = [c for c in (rule.values.get("cidr_ipv4"), rule.values.get("cidr_ipv6")) if c]
        rules[node_id(owner)].append(
            _ingress(
                rule.location,
                rule.values.get("from_port"),
                rule.values.get("to_port"),
                rule.values.get("ip_protocol", "tcp"),
                cidrs,
                (str(source),) if source else (),
            )
        )
    return rules


def _group_rules(
    index: ResourceIndex, rules: dict[str, list[_Ingress]], references: list[Any]
) -> list[_Ingress]:
    found: list[_Ingress] = []
    for reference in references:
        group = index.find("aws_security_group", reference)
        if group is not None:
            found.extend(rules.get(node_id(group), []))
    return found


def _subnet_of(index: ResourceIndex, resource: TfResource) -> TfResource | None:
    subnet = resource.values.get("subnet_id")
    if subnet is None:
        vpc = as_list(resource.values.get("vpc_config"))
        subnets = as_list(vpc[0].get("subnet_ids")) if vpc and isinstance(vpc[0], dict) else []
        subnet = subnets[0] if subnets else None
    return index.find("aws_subnet", subnet)


def _public_address(index: ResourceIndex, instance: TfResource, eips: set[str]) -> Any:
    """True / False / an Unknown: does the instance get a public IP?"""
    associate = instance.values.get("associate_public_ip_address")
    if associate is True or node_id(instance) in eips:
        return True
    if isinstance(associate, Unknown):
        return associate
    if associate is False:
        return False
    subnet = _subnet_of(index, instance)
    mapped = subnet.values.get("map_public_ip_on_launch") if subnet else None
    return mapped if mapped is True or isinstance(mapped, Unknown) else False


def network(
    index: ResourceIndex, workloads: list[Workload], graph: Graph, result: AwsResult
) -> None:
    rules = _ingress_rules(index)
    for group in index.by_type["aws_security_group"]:
        for rule in rules.get(node_id(group), []):
            if rule.maybe_world and any(rule.covers(p) for p in ADMIN_PORTS):
                what = "every port" if rule.protocol == "all" else "an administrative port"
                source = "the internet" if rule.world else "a source that cannot be resolved"
                result.findings.append(
                    finding(
                        "MZ-AWS-001",
                        f"Security group {display_name(group)} opens {what} to {source}"
                        + depends_note(rule.depends),
                        rule.location,
                        (node_id(group),),
                        Severity.LOW if rule.depends else None,
                    )
                )

    eips = set()
    for eip in index.by_type["aws_eip"] + index.by_type["aws_eip_association"]:
        instance = index.find(
            "aws_instance", eip.values.get("instance") or eip.values.get("instance_id")
        )
        if instance is not None:
            eips.add(node_id(instance))
    by_instance: dict[str, Workload] = {node_id(w.resource): w for w in workloads}
    for workload in workloads:
        instance = workload.resource
        if instance.type != "aws_instance":
            continue
        public = _public_address(index, instance, eips)
        if public is False:
            continue
        open_rules = [
            r
            for r in _group_rules(index, rules, workload.security_groups)
            if r.maybe_world and r.reaches_services
        ]
        unknown_groups = [g for g in workload.security_groups if isinstance(g, Unknown)]
        entry = min(open_rules, key=lambda r: (len(r.depends), r.location), default=None)
        if entry is None and not unknown_groups:
            continue
        depends = entry.depends if entry else tuple(n for g in unknown_groups for n in g.depends)
        if isinstance(public, Unknown):
            depends = tuple(dict.fromkeys(depends + public.depends))
        graph.add_edge(
            Edge(
                INTERNET,
                node_id(instance),
                "exposes",
                "public-instance",
                f"reaches instance {display_name(instance)} on its public IP "
                "through an open security group",
                entry.location if entry else instance.location,
                depends,
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
    """Internet-facing load balancer -> listener (and its rules) -> target group -> targets."""
    targets: dict[str, list[tuple[str, str]]] = defaultdict(list)  # group -> (node id, label)
    for attachment in (
        index.by_type["aws_lb_target_group_attachment"]
        + index.by_type["aws_alb_target_group_attachment"]
    ):
        group = _target_group(index, attachment.values.get("target_group_arn"))
        target_id = attachment.values.get("target_id")
        member = index.find("aws_instance", target_id) or index.find(
            "aws_lambda_function", target_id
        )
        if group and member and node_id(member) in graph.nodes:
            targets[node_id(group)].append(
                (node_id(member), f"{member.type} {display_name(member)}")
            )
    for scaling in index.by_type["aws_autoscaling_group"]:
        for reference in as_list(scaling.values.get("target_group_arns")):
            group = _target_group(index, reference)
            if group and node_id(scaling) in graph.nodes:
                targets[node_id(group)].append(
                    (node_id(scaling), f"auto scaling group {display_name(scaling)}")
                )
    for service in index.by_type["aws_ecs_service"]:
        for balancer in as_list(service.values.get("load_balancer")):
            group = (
                _target_group(index, balancer.get("target_group_arn"))
                if isinstance(balancer, dict)
                else None
            )
            task = index.find("aws_ecs_task_definition", service.values.get("task_definition"))
            if group and task and node_id(task) in graph.nodes:
                targets[node_id(group)].append((node_id(task), f"ECS task {display_name(task)}"))
    listeners = index.by_type["aws_lb_listener"] + index.by_type["aws_alb_listener"]
    listener_rules = index.by_type["aws_lb_listener_rule"] + index.by_type["aws_alb_listener_rule"]
    for lb_type in ("aws_lb", "aws_alb"):
        for balancer in index.by_type[lb_type]:
            internal = balancer.values.get("internal")
            if internal is True:
                continue
            groups = as_list(balancer.values.get("security_groups"))
            group_rules = _group_rules(index, rules, groups)
            is_network = balancer.values.get("load_balancer_type") in ("network", "gateway")
            open_rule = min(
                (r for r in group_rules if r.maybe_world and r.reaches_services),
                key=lambda r: (len(r.depends), r.location),
                default=None,
            )
            unknown_groups = [g for g in groups if isinstance(g, Unknown)]
            if not (open_rule or unknown_groups or is_network or not groups):
                continue
            depends: tuple[str, ...] = ()
            if open_rule is None and unknown_groups:
                depends = tuple(n for g in unknown_groups for n in g.depends)
            elif open_rule is not None and not is_network and groups:
                depends = open_rule.depends
            if isinstance(internal, Unknown):
                depends = tuple(dict.fromkeys(depends + internal.depends))
            reached: list[tuple[str, str, Location]] = []
            for listener in listeners:
                if (
                    index.find(balancer.type, listener.values.get("load_balancer_arn"))
                    is not balancer
                ):
                    continue
                actions = [
                    (a, listener.location) for a in as_list(listener.values.get("default_action"))
                ]
                for rule in listener_rules:
                    if index.find(listener.type, rule.values.get("listener_arn")) is listener:
                        actions += [(a, rule.location) for a in as_list(rule.values.get("action"))]
                for action, where in actions:
                    if not isinstance(action, dict):
                        continue
                    references = [action.get("target_group_arn")] + [
                        g.get("arn")
                        for forward in as_list(action.get("forward"))
                        if isinstance(forward, dict)
                        for g in as_list(forward.get("target_group"))
                        if isinstance(g, dict)
                    ]
                    for reference in references:
                        group = _target_group(index, reference)
                        for target, label in targets.get(node_id(group), []) if group else []:
                            reached.append((target, label, where))
            if not reached:
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
                    depends,
                )
            )
            for target, label, where in sorted(set(reached)):
                graph.add_edge(
                    Edge(
                        node_id(balancer),
                        target,
                        "exposes",
                        "lb-target",
                        f"is forwarded to {label}",
                        where,
                    )
                )


def _target_group(index: ResourceIndex, reference: Any) -> TfResource | None:
    return index.find("aws_lb_target_group", reference) or index.find(
        "aws_alb_target_group", reference
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
            groups = as_list(database.values.get("vpc_security_group_ids"))
            db_rules = [r for r in _group_rules(index, rules, groups) if r.reaches_services]
            public = database.values.get("publicly_accessible")
            if public is True or isinstance(public, Unknown):
                depends = public.depends if isinstance(public, Unknown) else ()
                result.findings.append(
                    finding(
                        "MZ-AWS-003",
                        f"Database {display_name(database)} is publicly accessible"
                        + depends_note(depends),
                        database.at("publicly_accessible"),
                        (node_id(database),),
                        Severity.LOW if depends else None,
                    )
                )
                world = min(
                    (r for r in db_rules if r.maybe_world),
                    key=lambda r: (len(r.depends), r.location),
                    default=None,
                )
                if world is not None:
                    graph.add_edge(
                        Edge(
                            INTERNET,
                            node_id(database),
                            "can_reach",
                            "public-database",
                            f"connects to database {display_name(database)} from the internet",
                            world.location,
                            tuple(dict.fromkeys(world.depends + depends)),
                        )
                    )
            for workload in workloads if db_rules else []:
                edge = _workload_reach(index, workload, database, db_rules)
                if edge is not None:
                    graph.add_edge(edge)


def _workload_reach(
    index: ResourceIndex, workload: Workload, database: TfResource, db_rules: list[_Ingress]
) -> Edge | None:
    """The database's security group admits the workload's group, or a CIDR holding its subnet."""
    names: set[str] = set()
    for reference in workload.security_groups:
        group = index.find("aws_security_group", reference)
        if group:
            names |= {group.name, display_name(group), arn_of(group)}
    subnet = _subnet_of(index, workload.resource)
    subnet_cidr = subnet.values.get("cidr_block") if subnet else None
    network = _network(subnet_cidr)
    for rule in db_rules:
        if names & set(rule.source_groups):
            how = "its security group admits this workload's group"
            technique = "security-group-reference"
        elif network is not None and any(
            (cidr := _network(c)) is not None
            and cidr.version == network.version
            and network.subnet_of(cidr)  # type: ignore[arg-type]
            for c in rule.cidrs
        ):
            how = f"its security group admits {subnet_cidr}, the workload's subnet"
            technique = "cidr-reachability"
        else:
            continue
        return Edge(
            node_id(workload.resource),
            node_id(database),
            "can_reach",
            technique,
            f"connects to database {display_name(database)} ({how})",
            rule.location,
        )
    return None


def _network(value: Any) -> IPv4Network | IPv6Network | None:
    if not isinstance(value, str):
        return None
    try:
        return ip_network(value, strict=False)
    except ValueError:
        return None
