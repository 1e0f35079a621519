"""The two images the node itself needs, built here because no registry can be reached: the pause
image (the sandbox every pod starts from, from Kubernetes' own C source) and CoreDNS (so that the
gateway reaches LiteLLM and MLflow by Service name). Both are `FROM scratch` with one static
binary, built with the Docker engine the project already uses for its own images, and imported
into the node's containerd under the names the node's configuration refers to.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from devstack.node import configs, gobuild, versions
from devstack.node.components import NodeError, run
from devstack.node.layout import NodeLayout

_SCRATCH_DOCKERFILE = """FROM scratch
COPY {binary} /{binary}
USER {user}
ENTRYPOINT ["/{binary}"]
"""


def _has_image(tag: str) -> bool:
    return (
        subprocess.run(  # noqa: S603
            ["docker", "image", "inspect", tag],  # noqa: S607
            capture_output=True,
            check=False,
        ).returncode
        == 0
    )


def _scratch_image(tag: str, binary: Path, user: str) -> None:
    if _has_image(tag):
        return
    with tempfile.TemporaryDirectory(prefix="llm-gateway-node-image-") as context:
        shutil.copy(binary, Path(context) / binary.name)
        (Path(context) / "Dockerfile").write_text(
            _SCRATCH_DOCKERFILE.format(binary=binary.name, user=user)
        )
        run(["docker", "build", "-q", "-t", tag, context])


def _pause_binary() -> Path:
    target = gobuild.cache_dir() / "build" / f"pause-{versions.KUBERNETES}" / "pause"
    if target.is_file():
        return target
    kk = Path(
        run(["go", "list", "-m", "-f", "{{.Dir}}", f"k8s.io/kubernetes@{versions.KUBERNETES}"])
        .strip()
        .splitlines()[-1]
    )
    source = kk / "build" / "pause" / "linux" / "pause.c"
    if not source.is_file():
        raise NodeError(f"pause.c not found in {kk}")
    target.parent.mkdir(parents=True, exist_ok=True)
    version = configs.PAUSE_IMAGE.rsplit(":", 1)[1]
    run(["gcc", "-Os", "-Wall", "-static", f"-DVERSION=v{version}", "-o", str(target), str(source)])
    run(["strip", str(target)])
    return target


def build() -> list[str]:
    """Build the pause and CoreDNS images if Docker lacks them; return their tags."""
    # 65535 is the pause image's own user upstream; CoreDNS runs as nobody with NET_BIND_SERVICE.
    _scratch_image(configs.PAUSE_IMAGE, _pause_binary(), "65535:65535")
    coredns = gobuild.bin_dir() / "coredns"
    _scratch_image(configs.COREDNS_IMAGE, coredns.resolve(), "65534:65534")
    return [configs.PAUSE_IMAGE, configs.COREDNS_IMAGE]


def _normalized(tag: str) -> str:
    """The name containerd gives a Docker reference (`llm-gateway:dev` is docker.io/library/...)."""
    name = tag if "/" in tag.split(":")[0] else f"library/{tag}"
    return name if "." in name.split("/")[0] else f"docker.io/{name}"


def node_has(tag: str, layout: NodeLayout, bins: Path) -> bool:
    """Whether the node's runtime holds `tag` as the very image Docker has (same image id)."""
    docker_id = subprocess.run(  # noqa: S603
        ["docker", "image", "inspect", "--format", "{{.Id}}", tag],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    listed = run(
        [
            str(bins / "crictl"),
            f"--runtime-endpoint=unix://{layout.containerd_socket}",
            "images",
            "-o",
            "json",
        ],
        check=False,
    )
    if not docker_id or not listed:
        return False
    wanted = _normalized(tag)
    return any(
        image["id"] == docker_id and wanted in image.get("repoTags", [])
        for image in json.loads(listed).get("images", [])
    )


def import_into_node(tags: Sequence[str], ctr: Path, socket: Path) -> None:
    """`docker save | ctr images import` into the kubelet's namespace, in one stream."""
    save = subprocess.Popen(  # noqa: S603
        ["docker", "save", *tags],  # noqa: S607
        stdout=subprocess.PIPE,
    )
    assert save.stdout is not None
    result = subprocess.run(  # noqa: S603
        [str(ctr), "--address", str(socket), "-n", "k8s.io", "images", "import", "-"],
        stdin=save.stdout,
        capture_output=True,
        text=True,
        check=False,
    )
    save.stdout.close()
    if save.wait() != 0 or result.returncode != 0:
        raise NodeError(
            f"importing {', '.join(tags)} into the node failed: {result.stderr[-2000:]}"
        )
