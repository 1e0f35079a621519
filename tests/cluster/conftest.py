"""The chart on a real single-node Kubernetes (devstack.node): one node start per session.

The node is started if it is not running (and stopped again at the end; a node the user started
is left as found). The project's images are built and loaded once; one release of the shipped
chart with k8s/values-node.yaml serves the tests that only read or briefly disturb it, each of
which leaves it as it found it. LiteLLM in the cluster serves the shipped mock models plus three
models routed to the controllable fake upstream on the node's address (slow calls and streams
the rollout tests need in flight).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from devstack.litellm_config import upstream_deployment
from devstack.node import images as node_images
from devstack.node import node as node_control
from devstack.node.layout import NodeLayout

from tests.cluster.kube import CHART, Kube, ready, wait_for
from tests.support.fake_upstream import FakeUpstreamProcess, start_fake_upstream

NAMESPACE = "llm-gateway"
RELEASE = "llm-gateway"
VALUES = CHART.parent.parent / "k8s" / "values-node.yaml"
GATEWAY_SELECTOR = "app.kubernetes.io/name=llm-gateway,app.kubernetes.io/component=gateway"
USER = {"username": "user", "password": "dev-password"}  # k8s/values-node.yaml
ADMIN = {"username": "admin", "password": "dev-password"}
# Models served by the fake upstream through the cluster's LiteLLM.
STEADY_MODEL = "fake-model"
LONG_MODEL = "slow-model"
STREAM_MODEL = "stream-model"
INSTALL_TIMEOUT = "15m"


# A test's budget covers the session fixtures it is first to use (the node's start, loading the
# images, `helm install --wait`) and whole rollouts on 2 cores; the builds run before pytest.
CLUSTER_TEST_TIMEOUT = 1200


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.cluster)
            item.add_marker(pytest.mark.timeout(CLUSTER_TEST_TIMEOUT))


@pytest.fixture(scope="session")
def node() -> Iterator[NodeLayout]:
    layout = NodeLayout.from_env()
    already_up = all(pid is not None for pid in node_control.status(layout).values())
    if not already_up:
        node_control.up(layout)
    try:
        yield layout
    finally:
        if not already_up and os.environ.get("LLM_GATEWAY_NODE_KEEP") != "1":
            node_control.down(layout)


@pytest.fixture(scope="session")
def kube(node: NodeLayout) -> Kube:
    return Kube(kubeconfig=node.admin_kubeconfig, namespace=NAMESPACE)


@pytest.fixture(scope="session")
def loaded_images(node: NodeLayout) -> list[str]:
    tags = node_images.build_all()
    node_control.load_images(node, tags)
    return tags


@pytest.fixture(scope="session")
def upstream(
    node: NodeLayout, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FakeUpstreamProcess]:
    process = start_fake_upstream(tmp_path_factory.mktemp("fake-upstream"), host=node.node_ip)
    try:
        yield process
    finally:
        process.stop()


def litellm_config(upstream_url: str) -> str:
    """The shipped LiteLLM config plus the fake upstream's models (appended, nothing removed)."""
    shipped = yaml.safe_load((CHART / "charts" / "litellm" / "files" / "config.yaml").read_text())
    for name in (STEADY_MODEL, LONG_MODEL, STREAM_MODEL):
        shipped["model_list"].append(
            upstream_deployment(name, upstream_url, timeout=120.0, stream_timeout=120.0)
        )
    return yaml.safe_dump(shipped, sort_keys=False)


@dataclass(frozen=True)
class Release:
    kube: Kube
    name: str
    values_file: Path  # everything the release was installed with, for later upgrades

    def upgrade(self, *overrides: str, wait: bool = True) -> Any:
        args = ["upgrade", self.name, str(CHART), "-f", str(self.values_file), *overrides]
        if wait:
            args += ["--wait", "--timeout", INSTALL_TIMEOUT]
        return self.kube.helm(*args)

    def gateway_pods(self) -> list[dict[str, Any]]:
        return [
            pod
            for pod in self.kube.pods(f"{GATEWAY_SELECTOR},app.kubernetes.io/instance={self.name}")
            if pod["metadata"].get("deletionTimestamp") is None
        ]

    def service(self) -> dict[str, Any]:
        result: dict[str, Any] = self.kube.get("service", self.name)
        return result

    def service_url(self) -> str:
        """The Service's ClusterIP, which the host reaches through kube-proxy's rules."""
        spec = self.service()["spec"]
        return f"http://{spec['clusterIP']}:{spec['ports'][0]['port']}"

    def wait_settled(self, replicas: int = 2, timeout: float = 300) -> None:
        """Exactly `replicas` gateway pods, all Ready, none terminating."""

        def settled() -> bool:
            pods = self.kube.pods(f"{GATEWAY_SELECTOR},app.kubernetes.io/instance={self.name}")
            return len(pods) == replicas and all(
                ready(p) and p["metadata"].get("deletionTimestamp") is None for p in pods
            )

        wait_for(f"{replicas} Ready gateway pods of {self.name}", settled, timeout)


def login(base_url: str, user: dict[str, str] = USER) -> str:
    response = httpx.post(f"{base_url}/auth/login", json=user, timeout=30)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


@pytest.fixture(scope="session")
def release(
    kube: Kube,
    loaded_images: list[str],
    upstream: FakeUpstreamProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Release]:
    values = yaml.safe_load(VALUES.read_text())
    values.setdefault("litellm", {})["config"] = litellm_config(upstream.base_url)
    # Every request of the load tests comes from this one host and user: the rate limits would
    # answer most of them 429 (they are tested on their own in tests/integration).
    values.setdefault("config", {})["rateLimitEnabled"] = False
    values_file = tmp_path_factory.mktemp("release") / "values.yaml"
    values_file.write_text(yaml.safe_dump(values, sort_keys=False))
    kube.helm(
        "install",
        RELEASE,
        str(CHART),
        "--create-namespace",
        "-f",
        str(values_file),
        "--wait",
        "--timeout",
        INSTALL_TIMEOUT,
    )
    handle = Release(kube, RELEASE, values_file)
    try:
        yield handle
    finally:
        with contextlib.suppress(AssertionError):
            kube.helm("uninstall", RELEASE, "--wait", "--timeout", "5m", check=False)
