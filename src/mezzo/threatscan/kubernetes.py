"""Kubernetes manifests (and rendered Helm output) -> graph nodes, edges, single findings."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from mezzo.threatscan.graph import INTERNET, Graph
from mezzo.threatscan.model import (
    Edge,
    Finding,
    LineDict,
    Location,
    Node,
    NodeKind,
    Severity,
    Skipped,
)
from mezzo.threatscan.parsing import Unparseable
from mezzo.threatscan.rules import finding
from mezzo.threatscan.secrets import (
    AWS_KEY_ID,
    AWS_SECRET_NAME,
    is_real_value,
    looks_like_secret_name,
    looks_like_secret_value,
)
from mezzo.threatscan.sources import SourceFile

HOST_NODE = "k8s:node"
CLUSTER_ADMIN_NODE = "k8s:cluster-admin"
WORKLOAD_KINDS = {
    "Pod",
    "Deployment",
    "DaemonSet",
    "StatefulSet",
    "ReplicaSet",
    "Job",
    "CronJob",
    "ReplicationController",
}
SENSITIVE_HOST_PATHS = (
    "/",
    "/etc",
    "/root",
    "/proc",
    "/sys",
    "/var/lib/kubelet",
    "/var/run",
    "/run",
    "/var/lib/docker",
    "/home",
    "/boot",
    "/dev",
)
RUNTIME_SOCKETS = ("docker.sock", "containerd.sock", "crio.sock", "cri-dockerd.sock")
# the directories that hold those sockets hand over the runtime just the same
RUNTIME_DIRS = (
    "/run/containerd",
    "/var/run/containerd",
    "/run/crio",
    "/var/run/crio",
    "/run/docker",
    "/var/run/docker",
    "/var/lib/containerd",
)
ESCAPE_CAPABILITIES = {"SYS_ADMIN", "SYS_MODULE", "ALL"}
DANGEROUS_CAPABILITIES = ESCAPE_CAPABILITIES | {
    "SYS_PTRACE",
    "DAC_READ_SEARCH",
    "NET_ADMIN",
    "SYS_RAWIO",
    "BPF",
}
READ_VERBS = {"get", "list", "watch", "*"}
WORKLOAD_RESOURCES = {
    "pods",
    "deployments",
    "daemonsets",
    "statefulsets",
    "replicasets",
    "jobs",
    "cronjobs",
    "replicationcontrollers",
    "*",
}
IRSA_ANNOTATION = "eks.amazonaws.com/role-arn"
_RESOURCE_OF = {
    "Pod": "pods",
    "Deployment": "deployments",
    "DaemonSet": "daemonsets",
    "StatefulSet": "statefulsets",
    "ReplicaSet": "replicasets",
    "Job": "jobs",
    "CronJob": "cronjobs",
    "ReplicationController": "replicationcontrollers",
}

_ALL_RULE = LineDict({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]})
BUILTIN_CLUSTER_ROLES: dict[str, list[LineDict]] = {
    "cluster-admin": [_ALL_RULE],
    "admin": [
        LineDict({"apiGroups": [""], "resources": ["secrets", "pods", "pods/exec"], "verbs": ["*"]})
    ],
    "edit": [
        LineDict({"apiGroups": [""], "resources": ["secrets", "pods", "pods/exec"], "verbs": ["*"]})
    ],
    "view": [
        LineDict(
            {
                "apiGroups": [""],
                "resources": ["pods", "services", "configmaps"],
                "verbs": ["get", "list", "watch"],
            }
        )
    ],
}


@dataclass
class K8sObject:
    kind: str
    name: str
    namespace: str
    body: LineDict
    path: str

    @property
    def id(self) -> str:
        return (
            f"k8s:{self.kind}/{self.namespace}/{self.name}"
            if self.namespace
            else f"k8s:{self.kind}/{self.name}"
        )

    def at(self, line: int) -> Location:
        return Location(self.path, line or self.body.line)

    @property
    def location(self) -> Location:
        return Location(self.path, self.body.line)


@dataclass
class K8sResult:
    findings: list[Finding] = field(default_factory=list)
    irsa: list[tuple[str, str, Location]] = field(default_factory=list)
    pods: list[str] = field(default_factory=list)  # workload nodes: where a compromise starts


CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "Node", "PersistentVolume"}


def load(
    sources: list[SourceFile], parsed: dict[str, Any]
) -> tuple[list[K8sObject], list[Skipped]]:
    """Kubernetes objects of every YAML/JSON file (parsed once, by `parsing`)."""
    objects: list[K8sObject] = []
    skipped: list[Skipped] = []
    for source in sources:
        if source.language not in ("yaml", "json"):
            continue
        documents = parsed.get(source.path)
        if isinstance(documents, Unparseable):
            if source.language == "yaml":  # JSON files report it once, as IAM input
                skipped.append(Skipped(source.path, documents.reason))
            continue
        for document in documents if isinstance(documents, list) else []:
            objects.extend(_objects(document, source.path))
    return objects, skipped


def _objects(document: Any, path: str) -> list[K8sObject]:
    if not isinstance(document, LineDict):
        return []
    kind, api = document.get("kind"), document.get("apiVersion")
    if not isinstance(kind, str) or not isinstance(api, str):
        return []
    items = document.get("items")
    if kind.endswith("List") and isinstance(items, list):
        return [o for item in items for o in _objects(item, path)]
    metadata = document.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    name = str(metadata.get("name", "unnamed"))
    namespace = "" if kind in CLUSTER_SCOPED else str(metadata.get("namespace") or "default")
    return [K8sObject(kind, name, namespace, document, path)]


def _get(mapping: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(mapping, dict):
            return None
        mapping = mapping.get(key)
    return mapping


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def pod_spec(obj: K8sObject) -> tuple[LineDict | None, dict[str, Any]]:
    body = obj.body
    if obj.kind == "Pod":
        spec, labels = body.get("spec"), _get(body, "metadata", "labels")
    elif obj.kind == "CronJob":
        template = _get(body, "spec", "jobTemplate", "spec", "template")
        spec, labels = _get(template, "spec"), _get(template, "metadata", "labels")
    else:
        template = _get(body, "spec", "template")
        spec, labels = _get(template, "spec"), _get(template, "metadata", "labels")
    return (
        spec if isinstance(spec, LineDict) else None,
        labels if isinstance(labels, dict) else {},
    )


def _selects(selector: Any, labels: dict[str, Any]) -> bool:
    if not isinstance(selector, dict) or not selector:
        return False
    match = selector.get("matchLabels", selector if "matchExpressions" not in selector else {})
    if not isinstance(match, dict):
        return False
    return all(labels.get(k) == v for k, v in match.items()) and bool(match)


class _Builder:
    def __init__(self, objects: list[K8sObject], graph: Graph) -> None:
        self.objects = objects
        self.graph = graph
        self.result = K8sResult()
        self.by_kind: dict[str, list[K8sObject]] = defaultdict(list)
        for obj in objects:
            self.by_kind[obj.kind].append(obj)
        self.workloads: list[tuple[K8sObject, LineDict, dict[str, Any]]] = []
        self.workload_sa: dict[str, str] = {}
        self.rbac_subjects: set[str] = set()
        self.config_secrets: dict[str, list[str]] = defaultdict(list)  # holder -> secret nodes
        self.leaks: dict[str, tuple[K8sObject, str, int]] = {}
        self.leak_keys: dict[str, list[str]] = defaultdict(list)
        self.pod_config_maps: dict[str, list[tuple[str, str]]] = defaultdict(list)

    def run(self) -> K8sResult:
        self._service_accounts()
        for obj in sorted(self.objects, key=lambda o: o.id):
            if obj.kind in WORKLOAD_KINDS:
                spec, labels = pod_spec(obj)
                if spec is not None:
                    self._workload(obj, spec, labels)
        self._config_maps()
        self._exposure()
        self._rbac()
        for node_id, (holder, message, line) in sorted(self.leaks.items()):
            aws = node_id.endswith("#aws-credentials")
            self.result.findings.append(
                finding(
                    "MZ-K8S-011",
                    f"{message} {', '.join(dict.fromkeys(self.leak_keys[node_id]))}",
                    holder.at(line),
                    (holder.id, node_id),
                    Severity.HIGH if aws else None,
                )
            )
        self._exposed_tokens()
        return self.result

    # -------------------------------------------------------------- identities

    def _sa_node(self, namespace: str, name: str, location: Location | None = None) -> str:
        node_id = f"k8s:ServiceAccount/{namespace}/{name}"
        self.graph.add_node(
            Node(node_id, NodeKind.IDENTITY, f"service account {namespace}/{name}", location)
        )
        return node_id

    def _service_accounts(self) -> None:
        self.sa_automount: dict[str, bool] = {}
        for sa in self.by_kind["ServiceAccount"]:
            node_id = self._sa_node(sa.namespace, sa.name, sa.location)
            self.sa_automount[node_id] = sa.body.get("automountServiceAccountToken") is not False
            role_arn = _get(sa.body, "metadata", "annotations", IRSA_ANNOTATION)
            if isinstance(role_arn, str):
                annotations = _get(sa.body, "metadata", "annotations")
                line = (
                    annotations.line_of(IRSA_ANNOTATION)
                    if isinstance(annotations, LineDict)
                    else sa.body.line
                )
                self.result.irsa.append((node_id, role_arn, sa.at(line)))

    # -------------------------------------------------------------- workloads

    def _host(self) -> str:
        self.graph.add_node(
            Node(
                HOST_NODE,
                NodeKind.HOST,
                "a cluster node (host root)",
            )
        )
        return HOST_NODE

    def _workload(self, obj: K8sObject, spec: LineDict, labels: dict[str, Any]) -> None:
        graph = self.graph
        graph.add_node(
            Node(obj.id, NodeKind.WORKLOAD, f"{obj.kind} {obj.namespace}/{obj.name}", obj.location)
        )
        self.workloads.append((obj, spec, labels))
        self.result.pods.append(obj.id)
        sa_name = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
        sa_id = self._sa_node(obj.namespace, str(sa_name))
        self.workload_sa[obj.id] = sa_id
        automount = spec.get("automountServiceAccountToken")
        mounted = automount if isinstance(automount, bool) else self.sa_automount.get(sa_id, True)
        if mounted:
            line = spec.line_of("serviceAccountName") if "serviceAccountName" in spec else spec.line
            graph.add_edge(
                Edge(
                    obj.id,
                    sa_id,
                    "runs_as",
                    "mounted-service-account-token",
                    f"reads the token of service account {sa_name} from "
                    "/var/run/secrets/kubernetes.io/serviceaccount",
                    obj.at(line),
                )
            )
        self._host_access(obj, spec)
        self._environment(obj, spec)

    def _escape(self, obj: K8sObject, technique: str, action: str, line: int) -> None:
        self.graph.add_edge(
            Edge(obj.id, self._host(), "can_mount_host", technique, action, obj.at(line))
        )

    def _host_access(self, obj: K8sObject, spec: LineDict) -> None:
        who = f"{obj.kind} {obj.namespace}/{obj.name}"
        for key in ("hostPID", "hostIPC", "hostNetwork"):
            if spec.get(key) is True:
                self.result.findings.append(
                    finding(
                        "MZ-K8S-002",
                        f"{who} sets {key}: true",
                        obj.at(spec.line_of(key)),
                        (obj.id,),
                    )
                )
        containers = _list(spec.get("containers")) + _list(spec.get("initContainers"))
        for container in containers:
            if not isinstance(container, LineDict):
                continue
            context = container.get("securityContext")
            context = context if isinstance(context, LineDict) else LineDict()
            cname = container.get("name", "?")
            if context.get("privileged") is True:
                line = context.line_of("privileged")
                self.result.findings.append(
                    finding(
                        "MZ-K8S-001",
                        f"{who}: container {cname} is privileged",
                        obj.at(line),
                        (obj.id,),
                    )
                )
                self._escape(
                    obj,
                    "privileged-container",
                    f"breaks out of privileged container {cname} onto the node "
                    "(mounts the host disk or nsenter -t 1)",
                    line,
                )
            added = _get(context, "capabilities", "add")
            for cap in _list(added):
                cap_name = str(cap).upper().removeprefix("CAP_")
                if cap_name in DANGEROUS_CAPABILITIES:
                    caps = _get(context, "capabilities")
                    line = caps.line_of("add") if isinstance(caps, LineDict) else context.line
                    self.result.findings.append(
                        finding(
                            "MZ-K8S-004",
                            f"{who}: container {cname} adds capability {cap_name}",
                            obj.at(line),
                            (obj.id,),
                        )
                    )
                    if cap_name in ESCAPE_CAPABILITIES or (
                        cap_name == "SYS_PTRACE" and spec.get("hostPID") is True
                    ):
                        self._escape(
                            obj,
                            f"capability-{cap_name.lower()}",
                            f"uses {cap_name} in container {cname} to escape to the node",
                            line,
                        )
        for volume in _list(spec.get("volumes")):
            path = _get(volume, "hostPath", "path")
            if not isinstance(path, str) or not isinstance(volume, LineDict):
                continue
            normalized = "/" + path.strip("/")
            socket = any(normalized.endswith(s) for s in RUNTIME_SOCKETS) or (
                normalized in RUNTIME_DIRS
            )
            if normalized in SENSITIVE_HOST_PATHS or socket:
                line = volume.line_of("hostPath")
                what = "the container runtime socket" if socket else f"host path {normalized}"
                self.result.findings.append(
                    finding("MZ-K8S-003", f"{who} mounts {what}", obj.at(line), (obj.id,))
                )
                verb = (
                    "starts a privileged container through the runtime socket"
                    if socket
                    else f"writes to the node through hostPath {normalized}"
                )
                if (
                    normalized
                    in (
                        "/",
                        "/etc",
                        "/root",
                        "/var/lib/kubelet",
                        "/var/run",
                        "/run",
                        "/var/lib/docker",
                        "/proc",
                        "/dev",
                        "/boot",
                    )
                    or socket
                ):
                    self._escape(
                        obj, "hostpath-runtime-socket" if socket else "hostpath-mount", verb, line
                    )

    # -------------------------------------------------------------- exposure

    def _isolated(self, obj: K8sObject, labels: dict[str, Any]) -> bool:
        """A NetworkPolicy selects the pod for Ingress and allows no ingress at all."""
        for policy in self.by_kind["NetworkPolicy"]:
            if policy.namespace != obj.namespace:
                continue
            spec = policy.body.get("spec")
            if not isinstance(spec, dict):
                continue
            selector = spec.get("podSelector")
            selected = selector == {} or selector is None or _selects(selector, labels)
            types = _list(spec.get("policyTypes")) or ["Ingress"]
            if selected and "Ingress" in types and not _list(spec.get("ingress")):
                return True
        return False

    def _backends(self, namespace: str, selector: Any) -> list[K8sObject]:
        return [
            obj
            for obj, _, labels in self.workloads
            if obj.namespace == namespace
            and _selects(selector, labels)
            and not self._isolated(obj, labels)
        ]

    def _exposure(self) -> None:
        services = {(s.namespace, s.name): s for s in self.by_kind["Service"]}
        for service in self.by_kind["Service"]:
            spec = service.body.get("spec")
            if not isinstance(spec, LineDict):
                continue
            service_type = spec.get("type", "ClusterIP")
            exposed = service_type in ("NodePort", "LoadBalancer")
            if exposed and self._link_service(service, spec):
                self.graph.add_edge(
                    Edge(
                        INTERNET,
                        service.id,
                        "exposes",
                        f"service-{str(service_type).lower()}",
                        f"connects to {service_type} service {service.name}",
                        service.at(spec.line_of("type")),
                    )
                )
        for ingress in self.by_kind["Ingress"]:
            targets: list[tuple[K8sObject, int]] = []
            for rule in _list(_get(ingress.body, "spec", "rules")):
                for path in _list(_get(rule, "http", "paths")):
                    backend = _get(path, "backend")
                    name = _get(backend, "service", "name") or _get(backend, "serviceName")
                    routed = services.get((ingress.namespace, str(name)))
                    if routed is not None and isinstance(path, LineDict):
                        targets.append((routed, path.line))
            default = _get(ingress.body, "spec", "defaultBackend", "service", "name")
            if default and (ingress.namespace, str(default)) in services:
                targets.append((services[(ingress.namespace, str(default))], ingress.body.line))
            linked = False
            for service, line in targets:
                spec = service.body.get("spec")
                if isinstance(spec, LineDict) and self._link_service(service, spec):
                    self.graph.add_node(
                        Node(
                            ingress.id,
                            NodeKind.ENTRY,
                            f"Ingress {ingress.namespace}/{ingress.name}",
                            ingress.location,
                        )
                    )
                    self.graph.add_edge(
                        Edge(
                            ingress.id,
                            service.id,
                            "exposes",
                            "ingress-route",
                            f"is routed to service {service.name}",
                            ingress.at(line),
                        )
                    )
                    linked = True
            if linked:
                self.graph.add_edge(
                    Edge(
                        INTERNET,
                        ingress.id,
                        "exposes",
                        "ingress",
                        f"sends HTTP requests to Ingress {ingress.name}",
                        ingress.location,
                    )
                )

    def _link_service(self, service: K8sObject, spec: LineDict) -> bool:
        backends = self._backends(service.namespace, spec.get("selector"))
        if not backends:
            return False
        self.graph.add_node(
            Node(
                service.id,
                NodeKind.ENTRY,
                f"Service {service.namespace}/{service.name} ({spec.get('type', 'ClusterIP')})",
                service.location,
            )
        )
        for backend in backends:
            self.graph.add_edge(
                Edge(
                    service.id,
                    backend.id,
                    "exposes",
                    "service-selector",
                    f"reaches {backend.kind} {backend.name} and gets code "
                    "execution through a vulnerability in it",
                    service.at(spec.line_of("selector")),
                )
            )
        return True

    # -------------------------------------------------------------- RBAC

    def _roles(self) -> dict[tuple[str, str, str], K8sObject]:
        return {
            (r.kind, r.namespace, r.name): r
            for r in self.by_kind["Role"] + self.by_kind["ClusterRole"]
        }

    def _subjects(self, binding: K8sObject) -> list[str]:
        out = []
        for subject in _list(binding.body.get("subjects")):
            if not isinstance(subject, dict):
                continue
            kind, name = subject.get("kind"), str(subject.get("name", ""))
            if kind == "ServiceAccount":
                namespace = str(subject.get("namespace") or binding.namespace or "default")
                out.append(self._sa_node(namespace, name))
            elif kind == "Group" and name.startswith("system:serviceaccounts"):
                namespace = name.removeprefix("system:serviceaccounts").lstrip(":")
                out += [
                    sa
                    for sa in sorted(set(self.workload_sa.values()))
                    if not namespace or sa.split("/")[1] == namespace
                ]
            elif kind in ("User", "Group"):
                node_id = f"k8s:{kind}/{name}"
                self.graph.add_node(
                    Node(node_id, NodeKind.IDENTITY, f"{kind.lower()} {name}", binding.location)
                )
                out.append(node_id)
        return out

    # -------------------------------------------------------------- secrets in manifests

    def _leaked(self, holder: K8sObject, key: str, value: Any, what: str, line: int) -> str | None:
        """A secret node for a literal secret in a manifest (and its finding), or None."""
        if not isinstance(value, str):
            return None
        aws = bool(AWS_KEY_ID.search(value)) or (
            AWS_SECRET_NAME.search(key) is not None and is_real_value(value)
        )
        if not aws and not (
            (looks_like_secret_name(key) and is_real_value(value)) or looks_like_secret_value(value)
        ):
            return None
        node_id = f"{holder.id}#{'aws-credentials' if aws else 'secret/' + key}"
        label = (
            f"AWS credentials of an unknown principal (in {what})" if aws else f"{key} in {what}"
        )
        if node_id not in self.graph.nodes:
            self.graph.add_node(Node(node_id, NodeKind.SECRET, label, holder.at(line)))
            self.config_secrets[holder.id].append(node_id)
            held = "AWS credentials" if aws else "a plaintext secret"
            self.leaks[node_id] = (holder, f"{what[0].upper()}{what[1:]} holds {held} in", line)
        self.leak_keys[node_id].append(key)
        return node_id

    def _environment(self, obj: K8sObject, spec: LineDict) -> None:
        """Literal env values of the pod's containers: the pod itself reads them."""
        what = f"the environment of {obj.kind} {obj.namespace}/{obj.name}"
        for container in _list(spec.get("containers")) + _list(spec.get("initContainers")):
            for variable in _list(container.get("env")) if isinstance(container, dict) else []:
                if not isinstance(variable, LineDict):
                    continue
                node_id = self._leaked(
                    obj, str(variable.get("name")), variable.get("value"), what, variable.line
                )
                if node_id is not None:
                    self._read_config(
                        obj.id, node_id, "from its own environment", obj.at(variable.line)
                    )
            for source in _list(container.get("envFrom")) if isinstance(container, dict) else []:
                name = _get(source, "configMapRef", "name")
                if name is not None:
                    self.pod_config_maps[obj.id].append((obj.namespace, str(name)))
        for volume in _list(spec.get("volumes")):
            name = _get(volume, "configMap", "name")
            if name is not None:
                self.pod_config_maps[obj.id].append((obj.namespace, str(name)))
        for container in _list(spec.get("containers")):
            for variable in _list(container.get("env")) if isinstance(container, dict) else []:
                name = _get(variable, "valueFrom", "configMapKeyRef", "name")
                if name is not None:
                    self.pod_config_maps[obj.id].append((obj.namespace, str(name)))

    def _config_maps(self) -> None:
        by_name: dict[tuple[str, str], K8sObject] = {}
        for config in self.by_kind["ConfigMap"]:
            data = config.body.get("data")
            what = f"ConfigMap {config.namespace}/{config.name}"
            if isinstance(data, LineDict):
                for key, value in data.items():
                    self._leaked(config, str(key), value, what, data.line_of(str(key)))
            by_name[(config.namespace, config.name)] = config
        for pod, names in sorted(self.pod_config_maps.items()):
            for name in sorted(set(names)):
                mounted = by_name.get(name)
                if mounted is None:
                    continue
                for node_id in self.config_secrets.get(mounted.id, []):
                    self._read_config(
                        pod, node_id, f"from ConfigMap {name[1]} it mounts", mounted.location
                    )

    def _read_config(self, source: str, node_id: str, how: str, where: Location) -> None:
        label = self.graph.nodes[node_id].label
        kind = "uses_credentials" if "#aws-credentials" in node_id else "can_read"
        self.graph.add_edge(
            Edge(source, node_id, kind, "secret-in-manifest", f"reads {label} {how}", where)
        )

    def _rbac(self) -> None:
        roles = self._roles()
        for binding in sorted(
            self.by_kind["RoleBinding"] + self.by_kind["ClusterRoleBinding"], key=lambda b: b.id
        ):
            ref = binding.body.get("roleRef")
            if not isinstance(ref, LineDict):
                continue
            ref_kind, ref_name = str(ref.get("kind", "")), str(ref.get("name", ""))
            role = roles.get((ref_kind, binding.namespace if ref_kind == "Role" else "", ref_name))
            if role is not None:
                rules = [r for r in _list(role.body.get("rules")) if isinstance(r, LineDict)]
                rule_where = role
            elif ref_kind == "ClusterRole" and ref_name in BUILTIN_CLUSTER_ROLES:
                rules, rule_where = BUILTIN_CLUSTER_ROLES[ref_name], binding
            else:
                continue
            scope = "" if binding.kind == "ClusterRoleBinding" else binding.namespace
            for subject in self._subjects(binding):
                self.rbac_subjects.add(subject)
                for rule in rules:
                    where = rule_where.at(rule.line) if rule.line else binding.at(ref.line)
                    self._grant(subject, rule, scope, where, binding, ref_name)

    def _grant(
        self,
        subject: str,
        rule: LineDict,
        scope: str,
        where: Location,
        binding: K8sObject,
        role_name: str,
    ) -> None:
        def allows(verbs: set[str], resource: str) -> bool:
            groups = {str(g) for g in _list(rule.get("apiGroups"))} or {""}
            resources = {str(r) for r in _list(rule.get("resources"))}
            rule_verbs = {str(v) for v in _list(rule.get("verbs"))}
            group_ok = (
                "*" in groups or "" in groups or resource not in ("secrets", "pods", "pods/exec")
            )
            resource_ok = "*" in resources or resource in resources
            return group_ok and resource_ok and bool(rule_verbs & (verbs | {"*"}))

        graph = self.graph
        names = [str(n) for n in _list(rule.get("resourceNames"))]
        who = graph.nodes[subject].label
        scope_text = "cluster-wide" if not scope else f"in namespace {scope}"
        if (
            allows({"*"}, "*")
            and "*" in {str(v) for v in _list(rule.get("verbs"))}
            and not scope
            and "*" in {str(g) for g in _list(rule.get("apiGroups"))}
        ):
            graph.add_node(
                Node(CLUSTER_ADMIN_NODE, NodeKind.ADMIN, "cluster-admin on the Kubernetes cluster")
            )
            graph.add_edge(
                Edge(
                    subject,
                    CLUSTER_ADMIN_NODE,
                    "administers",
                    "rbac-cluster-admin",
                    f"acts as cluster-admin through role {role_name}",
                    where,
                )
            )
            self.result.findings.append(
                finding(
                    "MZ-K8S-009",
                    f"{who} is bound to {role_name}, which allows everything cluster-wide",
                    binding.location,
                    (subject,),
                )
            )
            return
        if allows(READ_VERBS, "secrets"):
            targets = [
                (f"k8s:Secret/{scope or '*'}/{n}", f"Secret {scope}/{n}") for n in names
            ] or [(f"k8s:Secret/{scope or '*'}/*", "every Secret " + scope_text)]
            for node_id, label in targets:
                graph.add_node(Node(node_id, NodeKind.SECRET, label))
                graph.add_edge(
                    Edge(
                        subject,
                        node_id,
                        "can_read",
                        "rbac-secrets-read",
                        f"reads {label} with kubectl get secrets",
                        where,
                    )
                )
            self.result.findings.append(
                finding(
                    "MZ-K8S-005",
                    f"{who} can read Secrets {scope_text} (role {role_name})",
                    where,
                    (subject,),
                    None if names or scope else Severity.HIGH,
                )
            )
        self._config_readers(subject, allows, scope, where)
        if allows({"create"}, "pods/exec"):
            self.result.findings.append(
                finding(
                    "MZ-K8S-006",
                    f"{who} can exec into pods {scope_text} (role {role_name})",
                    where,
                    (subject,),
                )
            )
            for obj, _, _ in self.workloads:
                if (not scope or obj.namespace == scope) and self.workload_sa.get(
                    obj.id
                ) != subject:
                    graph.add_edge(
                        Edge(
                            subject,
                            obj.id,
                            "can_exec",
                            "rbac-pod-exec",
                            f"runs kubectl exec into {obj.kind} {obj.name}",
                            where,
                        )
                    )
        if any(allows({"create"}, r) for r in WORKLOAD_RESOURCES - {"*"}):
            self.result.findings.append(
                finding(
                    "MZ-K8S-007",
                    f"{who} can create pods {scope_text} (role {role_name})",
                    where,
                    (subject,),
                )
            )
            if not self._pod_security_blocks(scope):
                graph.add_edge(
                    Edge(
                        subject,
                        self._host(),
                        "can_escalate_to",
                        "rbac-pod-create",
                        "creates a privileged pod that mounts the node's root filesystem",
                        where,
                    )
                )
            # Pod Security admission does not restrict serviceAccountName: any token in scope
            for account in sorted(self.service_accounts()):
                if account != subject and (not scope or account.split("/")[1] == scope):
                    graph.add_edge(
                        Edge(
                            subject,
                            account,
                            "can_escalate_to",
                            "rbac-pod-create-token",
                            f"creates a pod that runs as {graph.nodes[account].label} and reads "
                            "its token",
                            where,
                        )
                    )
        for verb, resources in (
            ("bind", ("roles", "clusterroles")),
            ("escalate", ("roles", "clusterroles")),
            ("impersonate", ("users", "groups", "serviceaccounts")),
        ):
            if any(allows({verb}, r) for r in resources):
                graph.add_node(
                    Node(
                        CLUSTER_ADMIN_NODE,
                        NodeKind.ADMIN,
                        "cluster-admin on the Kubernetes cluster",
                    )
                )
                self.result.findings.append(
                    finding(
                        "MZ-K8S-008",
                        f"{who} can {verb} {scope_text} (role {role_name})",
                        where,
                        (subject,),
                    )
                )
                if not scope:
                    graph.add_edge(
                        Edge(
                            subject,
                            CLUSTER_ADMIN_NODE,
                            "can_escalate_to",
                            f"rbac-{verb}",
                            f"uses the {verb} verb to grant itself cluster-admin",
                            where,
                        )
                    )
                break

    def _config_readers(self, subject: str, allows: Any, scope: str, where: Location) -> None:
        """get/list on pods (or their controllers) and configmaps reads the secrets in them."""
        for obj in self.objects if self.config_secrets else ():
            secrets = self.config_secrets.get(obj.id)
            if not secrets or (scope and obj.namespace != scope):
                continue
            resource = (
                "configmaps" if obj.kind == "ConfigMap" else _RESOURCE_OF.get(obj.kind, "pods")
            )
            if allows(READ_VERBS, resource) or (
                obj.kind != "ConfigMap" and allows(READ_VERBS, "pods")
            ):
                for node_id in secrets:
                    self._read_config(
                        subject, node_id, f"with kubectl get {resource} -o yaml", where
                    )

    def service_accounts(self) -> set[str]:
        return {n for n in self.graph.nodes if n.startswith("k8s:ServiceAccount/")}

    def _pod_security_blocks(self, scope: str) -> bool:
        if not scope:
            return False
        for namespace in self.by_kind["Namespace"]:
            level = _get(namespace.body, "metadata", "labels", "pod-security.kubernetes.io/enforce")
            if namespace.name == scope and level in ("baseline", "restricted"):
                return True
        return False

    def _exposed_tokens(self) -> None:
        exposed = {e.target for e in self.graph.edges.values() if e.kind == "exposes"}
        granted = {
            e.source
            for e in self.graph.edges.values()
            if e.source.startswith("k8s:ServiceAccount/")
        }
        for edge in sorted(self.graph.edges.values(), key=lambda e: (e.source, e.target)):
            if edge.kind == "runs_as" and edge.source in exposed and edge.target in granted:
                self.result.findings.append(
                    finding(
                        "MZ-K8S-010",
                        f"{self.graph.nodes[edge.source].label} is exposed and mounts "
                        f"the token of {self.graph.nodes[edge.target].label}, which holds RBAC rights",
                        edge.location,
                        (edge.source, edge.target),
                    )
                )


def build(objects: list[K8sObject], graph: Graph) -> K8sResult:
    return _Builder(objects, graph).run()
