"""Kubernetes from the inside: a compromised pod's token, RBAC to other service accounts, the
node and cluster-admin; the runtime sockets; Helm charts rendered when helm is installed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from threatscan_support import FIXTURES, scan_fixture

from mezzo.threatscan import helm
from mezzo.threatscan.analyze import scan
from mezzo.threatscan.kubernetes import CLUSTER_ADMIN_NODE, HOST_NODE


def test_a_compromised_pod_creates_a_pod_with_a_stronger_token_and_becomes_cluster_admin() -> None:
    report = scan_fixture("k8s/in-cluster")
    paths = {(f.nodes[0], f.nodes[-1]): f for f in report.findings if f.rule.id == "MZ-PATH-005"}
    admin = paths[("k8s:Deployment/apps/frontend", CLUSTER_ADMIN_NODE)]
    assert admin.nodes == (
        "k8s:Deployment/apps/frontend",
        "k8s:ServiceAccount/apps/frontend",
        "k8s:ServiceAccount/apps/deployer",
        CLUSTER_ADMIN_NODE,
    )
    assert [s.technique for s in admin.steps[:-1]] == [
        "mounted-service-account-token",
        "rbac-pod-create-token",
        "rbac-cluster-admin",
    ]
    assert admin.severity.label == "high"
    node = paths[("k8s:Deployment/apps/frontend", HOST_NODE)]
    assert node.steps[1].technique == "rbac-pod-create"
    assert set(paths) == {
        ("k8s:Deployment/apps/frontend", CLUSTER_ADMIN_NODE),
        ("k8s:Deployment/apps/frontend", HOST_NODE),
    }


def test_containerd_socket_and_the_crio_directory_are_host_escapes_and_var_log_is_not() -> None:
    report = scan_fixture("k8s/in-cluster")
    graph = report.graph
    assert graph is not None
    escapes = {(e.source, e.technique) for e in graph.edges.values() if e.target == HOST_NODE}
    assert {
        ("k8s:DaemonSet/kube-system/log-agent", "hostpath-runtime-socket"),
        ("k8s:DaemonSet/kube-system/crio-agent", "hostpath-runtime-socket"),
    } <= escapes
    mounts = [f.location.line for f in report.findings if f.rule.id == "MZ-K8S-003"]  # type: ignore[union-attr]
    assert mounts == [81, 102]  # not /var/log/pods (line 105)


def test_a_chart_without_helm_is_skipped_with_a_note_and_its_templates_are_not_parsed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    report = scan(FIXTURES / "helm")
    assert [(s.path, s.reason.split(":")[0]) for s in report.skipped] == [
        ("web", "Helm chart not rendered")
    ]
    assert "`helm` is not installed" in report.skipped[0].reason
    assert report.findings == []


def test_rendered_output_is_split_per_template_at_the_template_path() -> None:
    output = (
        "---\n# Source: web/templates/service.yaml\napiVersion: v1\nkind: Service\n"
        "metadata:\n  name: s\n"
        "---\n# Source: web/templates/deployment.yaml\napiVersion: apps/v1\nkind: Deployment\n"
        "metadata:\n  name: d\n"
        "---\n# Source: web/charts/db/templates/sts.yaml\napiVersion: apps/v1\n"
        "kind: StatefulSet\nmetadata:\n  name: db\n"
    )
    rendered = helm.split_rendered(output, "deploy/web")
    assert [s.path for s in rendered] == [
        "deploy/web/charts/db/templates/sts.yaml",
        "deploy/web/templates/deployment.yaml",
        "deploy/web/templates/service.yaml",
    ]
    assert "kind: Deployment" in rendered[1].text
    assert all(s.language == "yaml" for s in rendered)


@pytest.mark.skipif(shutil.which("helm") is None, reason="helm is not installed here")
def test_a_chart_is_rendered_with_helm_and_its_findings_point_at_the_template(
    tmp_path: Path,
) -> None:
    shutil.copytree(FIXTURES / "helm", tmp_path / "charts")
    report = scan(tmp_path / "charts")
    assert report.skipped == []
    (privileged,) = [f for f in report.findings if f.rule.id == "MZ-K8S-001"]
    assert privileged.location.path == "web/templates/deployment.yaml"  # type: ignore[union-attr]


def test_every_walkthrough_script_stays_inert(tmp_path: Path) -> None:
    from mezzo.threatscan import explain

    written = explain.write(scan(FIXTURES), tmp_path)
    assert len(written) >= 20
    for script in written:
        lines = script.read_text().splitlines()
        assert [line for line in lines if line.strip() and not line.startswith("#")] == ["exit 0"]
