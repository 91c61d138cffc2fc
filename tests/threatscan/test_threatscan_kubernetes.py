"""Kubernetes loaders and attack edges, each against a positive and a near-miss fixture."""

from __future__ import annotations

from threatscan_support import rule_ids, scan_fixture

from mezzo.threatscan.kubernetes import CLUSTER_ADMIN_NODE, HOST_NODE


def test_exposed_pod_whose_service_account_reads_secrets_cluster_wide_is_one_path() -> None:
    report = scan_fixture("k8s/exposed-secrets")
    paths = [f for f in report.findings if f.rule.id == "MZ-PATH-003"]
    assert len(paths) == 1
    path = paths[0]
    assert [s.node for s in path.steps] == [
        "internet",
        "k8s:Service/shop/web",
        "k8s:Deployment/shop/web",
        "k8s:ServiceAccount/shop/web",
        "k8s:Secret/*/*",
    ]
    lines = [s.location.line for s in path.steps[:-1]]  # type: ignore[union-attr]
    # type: LoadBalancer, selector, serviceAccountName, the ClusterRole's secrets rule
    assert lines == [36, 37, 23, 48]
    assert "MZ-K8S-010" in rule_ids(report)


def test_pod_without_a_mounted_token_breaks_the_path() -> None:
    report = scan_fixture("k8s/exposed-secrets-negative")
    assert not [f for f in report.findings if f.steps]
    assert "MZ-K8S-010" not in rule_ids(report)
    assert "MZ-K8S-005" in rule_ids(report)  # the RBAC grant itself is still reported


def test_host_escapes_are_found_with_their_lines() -> None:
    report = scan_fixture("k8s/workloads/positive.yaml")
    found = {(f.rule.id, f.location.line) for f in report.findings}  # type: ignore[union-attr]
    assert found == {
        ("MZ-K8S-001", 11),
        ("MZ-K8S-002", 25),
        ("MZ-K8S-002", 26),
        ("MZ-K8S-002", 27),
        ("MZ-K8S-003", 33),
        ("MZ-K8S-003", 53),
        ("MZ-K8S-004", 74),
    }
    graph = report.graph
    assert graph is not None
    escapes = {(e.source, e.technique) for e in graph.edges.values() if e.target == HOST_NODE}
    assert escapes == {
        ("k8s:Pod/tools/privileged", "privileged-container"),
        ("k8s:DaemonSet/tools/node-agent", "hostpath-mount"),
        ("k8s:CronJob/tools/builder", "hostpath-runtime-socket"),
        ("k8s:StatefulSet/tools/capable", "capability-sys_admin"),
    }


def test_workload_near_misses_are_clean() -> None:
    report = scan_fixture("k8s/workloads/negative.yaml")
    assert report.findings == []
    assert HOST_NODE not in report.graph.nodes  # type: ignore[union-attr]


def test_rbac_grants_are_found() -> None:
    report = scan_fixture("k8s/rbac/positive.yaml")
    assert sorted(set(rule_ids(report))) == [
        "MZ-K8S-005",
        "MZ-K8S-006",
        "MZ-K8S-007",
        "MZ-K8S-008",
        "MZ-K8S-009",
    ]
    edges = {(e.source, e.target, e.technique) for e in report.graph.edges.values()}  # type: ignore[union-attr]
    runner = "k8s:ServiceAccount/ci/runner"
    assert (runner, "k8s:Pod/ci/target", "rbac-pod-exec") in edges
    assert (runner, HOST_NODE, "rbac-pod-create") in edges
    assert (runner, "k8s:Secret/ci/*", "rbac-secrets-read") in edges
    assert ("k8s:ServiceAccount/ops/operator", CLUSTER_ADMIN_NODE, "rbac-bind") in edges
    assert ("k8s:ServiceAccount/ops/deployer", CLUSTER_ADMIN_NODE, "rbac-cluster-admin") in edges


def test_rbac_near_misses_are_clean() -> None:
    report = scan_fixture("k8s/rbac/negative.yaml")
    assert report.findings == []
    kinds = {e.kind for e in report.graph.edges.values()}  # type: ignore[union-attr]
    assert kinds <= {"runs_as"}


def test_pod_creation_in_a_restricted_namespace_is_not_a_host_escape(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from threatscan_support import FIXTURES

    from mezzo.threatscan.analyze import scan

    text = (
        (FIXTURES / "k8s/rbac/positive.yaml")
        .read_text()
        .replace(
            "metadata:\n  name: ci\n",
            "metadata:\n  name: ci\n  labels:\n    pod-security.kubernetes.io/enforce: baseline\n",
            1,
        )
    )
    (tmp_path / "rbac.yaml").write_text(text)
    report = scan(tmp_path)
    assert "MZ-K8S-007" in rule_ids(report)
    techniques = {e.technique for e in report.graph.edges.values()}  # type: ignore[union-attr]
    assert "rbac-pod-create" not in techniques


def test_ingress_to_privileged_pod_is_a_host_path() -> None:
    report = scan_fixture("k8s/ingress/positive.yaml")
    paths = [f for f in report.findings if f.rule.id == "MZ-PATH-004"]
    assert len(paths) == 1
    assert [s.node for s in paths[0].steps][:4] == [
        "internet",
        "k8s:Ingress/api/api",
        "k8s:Service/api/api",
        "k8s:Deployment/api/api",
    ]


def test_network_policy_denying_ingress_removes_the_exposure() -> None:
    report = scan_fixture("k8s/ingress/negative.yaml")
    assert rule_ids(report) == ["MZ-K8S-001"]
