"""Fixtures of the e2e suite: the engine and image must exist (fail loudly, never skip)."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from tests.e2e.harness.deployment import PodFactory
from tests.e2e.harness.endpoints import Endpoints, ServiceProxy
from tests.e2e.harness.manifests import (
    GATEWAY_CONTAINER,
    GATEWAY_DEPLOYMENT,
    RenderedManifests,
    gateway_manifests,
)
from tests.e2e.harness.pod import PodSpec, pod_spec_from_manifests

IMAGE = os.environ.get("E2E_IMAGE", "llm-gateway:dev")


@pytest.fixture(scope="session")
def docker_engine() -> None:
    result = subprocess.run(["docker", "info"], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.fail(
            "no Docker engine answers `docker info`; run `make docker-engine` (make test-e2e does)"
            f":\n{result.stderr.strip()}",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def gateway_image(docker_engine: None) -> str:
    result = subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True, check=False)
    if result.returncode != 0:
        pytest.fail(f"image {IMAGE} is not built; run `make test-e2e`", pytrace=False)
    return IMAGE


@pytest.fixture(scope="session")
def manifests() -> RenderedManifests:
    rendered = gateway_manifests()
    print(f"\n[e2e] pod spec source: {rendered.source}")
    return rendered


@pytest.fixture(scope="session")
def pod_spec(manifests: RenderedManifests) -> PodSpec:
    return pod_spec_from_manifests(
        manifests.documents, deployment=GATEWAY_DEPLOYMENT, container=GATEWAY_CONTAINER
    )


@pytest.fixture(scope="session")
def docker_network(docker_engine: None) -> Iterator[str]:
    name = f"llm-gateway-e2e-{uuid.uuid4().hex[:8]}"
    subprocess.run(["docker", "network", "create", "--label", "llm-gateway-e2e", name], check=True)
    yield name
    subprocess.run(["docker", "network", "rm", name], check=False, capture_output=True)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def service() -> AsyncIterator[ServiceProxy]:
    """A Service in front of the module's pods; endpoint changes land 1 s late.

    Module-scoped (starting a pod costs seconds): e2e test modules run their tests in the module's
    event loop, `pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]`.
    """
    proxy = ServiceProxy(Endpoints(propagation_delay=1.0))
    await proxy.start()
    yield proxy
    await proxy.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pods(
    gateway_image: str,
    pod_spec: PodSpec,
    docker_network: str,
    service: ServiceProxy,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[PodFactory]:
    """Makes pods from the chart's spec; removes every container it made at module end."""
    factory = PodFactory(
        template=pod_spec,
        image=gateway_image,
        network=docker_network,
        workdir=tmp_path_factory.mktemp("pods"),
        endpoints=service.endpoints,
    )
    yield factory
    await factory.cleanup()
