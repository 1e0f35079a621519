"""skaffold on the real node, as `make cluster-dev` runs it: `skaffold run -p node` deploys the
chart with an image it built and loaded itself, then one `skaffold dev` iteration: a source file
changes, and the new pods serve the change.

skaffold works on a copy of the repository's files (tracked and untracked, not ignored), so the
edit never touches the working tree; it uses the same skaffold.yaml, Dockerfile and chart.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from devstack.node import gobuild
from devstack.node.layout import NodeLayout
from devstack.venvs import repo_root

from tests.cluster.conftest import RELEASE
from tests.cluster.kube import TOOLS, Kube, wait_for

VERSION_FILE = Path("service/llm_gateway/__init__.py")
DEPLOY_TIMEOUT = 900
# As `make cluster-dev`: skaffold's artifact cache would skip the build script, and so the import
# into the node, for an image Docker already has (the node's copy is what the pods need).
NODE_FLAGS = ("--cache-artifacts=false",)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = repo_root()
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=root,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    copy = tmp_path_factory.mktemp("skaffold") / "repo"
    for raw in filter(None, listed):
        relative = Path(raw.decode())
        if not (root / relative).is_file():
            continue
        (copy / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / relative, copy / relative)
    return copy


@pytest.fixture(scope="module")
def skaffold_env(node: NodeLayout) -> dict[str, str]:
    return {
        **os.environ,
        "KUBECONFIG": str(node.admin_kubeconfig),
        # skaffold's own folder first: its helm is Helm 3 (skaffold 2.16 cannot drive Helm 4).
        "PATH": f"{gobuild.skaffold_path()}:{TOOLS}:{os.environ['PATH']}",
        "NODE_PYTHON": str(repo_root() / ".venv" / "bin" / "python"),
        "SKAFFOLD_UPDATE_CHECK": "false",
        "SKAFFOLD_INTERACTIVE": "false",
    }


def served_version(kube: Kube) -> str | None:
    try:
        spec = kube.get("service", RELEASE)["spec"]
        url = f"http://{spec['clusterIP']}:{spec['ports'][0]['port']}/openapi.json"
        return str(httpx.get(url, timeout=5).json()["info"]["version"])
    except (AssertionError, httpx.HTTPError, ValueError, KeyError):
        return None


def gateway_images(kube: Kube) -> set[str]:
    pods = kube.pods(f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=gateway")
    return {c["image"] for pod in pods for c in pod["spec"]["containers"]}


@pytest.fixture(scope="module")
def deployed_by_skaffold_run(
    workspace: Path, skaffold_env: dict[str, str], kube: Kube, loaded_images: list[str]
) -> Iterator[None]:
    result = subprocess.run(
        ["skaffold", "run", "-p", "node", "--status-check=true", *NODE_FLAGS],
        cwd=workspace,
        env=skaffold_env,
        capture_output=True,
        text=True,
        timeout=DEPLOY_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    try:
        yield
    finally:
        subprocess.run(
            ["skaffold", "delete", "-p", "node"],
            cwd=workspace,
            env=skaffold_env,
            capture_output=True,
            timeout=300,
            check=False,
        )


def test_skaffold_run_deploys_the_chart_with_its_own_build(
    deployed_by_skaffold_run: None, kube: Kube, workspace: Path
) -> None:
    images = gateway_images(kube)
    assert images and all(not image.endswith(":dev") for image in images), images
    current = re.search(r'__version__ = "([^"]+)"', (workspace / VERSION_FILE).read_text())
    assert current is not None
    assert served_version(kube) == current.group(1)


def test_one_skaffold_dev_iteration_serves_a_source_change(
    deployed_by_skaffold_run: None, workspace: Path, skaffold_env: dict[str, str], kube: Kube
) -> None:
    log = (workspace.parent / "skaffold-dev.log").open("w")
    dev = subprocess.Popen(
        ["skaffold", "dev", "-p", "node", "--port-forward=false", "--cleanup=false", *NODE_FLAGS],
        cwd=workspace,
        env=skaffold_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        log_path = Path(log.name)
        wait_for(
            "skaffold dev's first deploy to settle",
            lambda: "Watching for changes" in log_path.read_text(),
            timeout=DEPLOY_TIMEOUT,
            interval=2,
        )
        before = gateway_images(kube)
        changed = f"0.1.0+dev-iteration-{int(time.time())}"
        source = workspace / VERSION_FILE
        source.write_text(f'"""llm-gateway."""\n\n__version__ = "{changed}"\n')
        wait_for(
            "the Service to serve the changed source",
            lambda: served_version(kube) == changed,
            timeout=DEPLOY_TIMEOUT,
            interval=2,
        )
        assert gateway_images(kube) != before, "a new image was built and rolled out"
    finally:
        os.killpg(dev.pid, signal.SIGINT)
        try:
            dev.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(dev.pid, signal.SIGKILL)
        log.close()
