"""The user's path on the real node: helm install --wait (the `release` fixture), helm test,
kubectl port-forward + the README's curl flow, and a config change that rolls the pods."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
from devstack.node import versions
from devstack.node.layout import NodeLayout
from devstack.venvs import repo_root

from tests.cluster.conftest import ADMIN, Release, login
from tests.cluster.kube import Kube, port_forward, wait_for


def test_the_node_is_real_kubernetes_at_the_pinned_version(kube: Kube, node: NodeLayout) -> None:
    version = json.loads(kube.kubectl("version", "-o", "json", namespaced=False).stdout)
    assert version["serverVersion"]["gitVersion"] == versions.KUBERNETES
    info = kube.get("node", node.name)["status"]["nodeInfo"]
    assert info["kubeletVersion"] == versions.KUBERNETES
    assert info["kubeProxyVersion"] in ("", versions.KUBERNETES)  # deprecated field, may be empty
    assert info["containerRuntimeVersion"] == f"containerd://{versions.CONTAINERD.lstrip('v')}"


def test_helm_install_waited_for_every_workload(release: Release) -> None:
    status = json.loads(release.kube.helm("status", release.name, "-o", "json").stdout)
    assert status["info"]["status"] == "deployed"
    deployments = release.kube.get("deployments")["items"]
    names = {d["metadata"]["name"]: d for d in deployments}
    assert {release.name, f"{release.name}-litellm", f"{release.name}-mlflow"} <= set(names)
    statefulsets = release.kube.get("statefulsets")["items"]
    assert f"{release.name}-postgresql" in {s["metadata"]["name"] for s in statefulsets}
    for workload in [*names.values(), *statefulsets]:
        spec_replicas = workload["spec"]["replicas"]
        assert workload["status"].get("readyReplicas", 0) == spec_replicas, workload["metadata"]


def test_helm_test_passes(release: Release) -> None:
    result = release.kube.helm("test", release.name, "--timeout", "5m", "--logs")
    assert "Phase:          Succeeded" in result.stdout or "Succeeded" in result.stdout, (
        result.stdout
    )


def test_port_forward_and_the_readme_curl_flow(release: Release) -> None:
    with port_forward(release.kube, f"service/{release.name}", 8000) as url:
        # `helm install --wait` waits for readiness, which (by design) does not include MLflow,
        # and MLflow's first minute after start is busy (schema set-up, the first exports): the
        # flow's /health/detailed step wants every dependency up, on whichever worker answers.
        token = login(url, ADMIN)
        streak: list[int] = []

        def settled() -> bool:
            response = httpx.get(
                f"{url}/health/detailed", headers={"Authorization": f"Bearer {token}"}, timeout=10
            )
            streak.append(response.status_code)
            return streak[-5:] == [200] * 5

        wait_for("/health/detailed up five times in a row", settled, timeout=180, interval=1)
        result = subprocess.run(
            [sys.executable, str(repo_root() / "scripts" / "smoke.py"), "--base-url", url],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    assert result.returncode == 0, result.stdout + result.stderr


def test_upgrade_with_a_changed_config_rolls_the_pods(release: Release) -> None:
    before = {pod["metadata"]["name"] for pod in release.gateway_pods()}
    checksum_before = _config_checksum(release)
    release.upgrade("--set", "config.logLevel=DEBUG")
    release.wait_settled()
    after = {pod["metadata"]["name"] for pod in release.gateway_pods()}
    assert _config_checksum(release) != checksum_before
    assert before.isdisjoint(after), "every gateway pod is replaced after a config change"
    configmap = release.kube.get("configmap", release.name)
    assert "DEBUG" in json.dumps(configmap["data"])
    # Back to the installed values, which rolls once more.
    release.upgrade()
    release.wait_settled()


def _config_checksum(release: Release) -> str:
    deployment = release.kube.get("deployment", release.name)
    annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
    return str(annotations["checksum/config"])
