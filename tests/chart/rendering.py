"""Render the Helm chart with the real `helm` binary and look things up in the manifests.

Renders are cached per (values files, --set values, Kubernetes version, chart directory) for the
whole session: the same render is asked for by many tests, and helm costs ~100 ms a call.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "chart" / "llm-gateway"
HELM = ROOT / ".tools" / "bin" / "helm"
KIND_VALUES = ROOT / "k8s" / "values-kind.yaml"
PRODUCTION_VALUES = ROOT / "k8s" / "values-production-example.yaml"
# Our single real node: locally built images only (devstack/node/images.py), no PVCs.
NODE_VALUES = ROOT / "k8s" / "values-node.yaml"
RELEASE = "demo"
NAMESPACE = "llm"
# The one thing the default values lack on purpose.
JWT = "chart-test-signing-key-0123456789abcdef-0123"
DEFAULT_SETS = (f"secrets.jwtSecretKey={JWT}",)


class HelmMissing(RuntimeError):
    pass


class RenderFailed(RuntimeError):
    """helm refused to render; `stderr` holds its message."""

    def __init__(self, stderr: str) -> None:
        self.stderr = stderr
        super().__init__(stderr)


def helm_binary() -> Path:
    if not HELM.exists():
        raise HelmMissing(f"{HELM} not found: run `make tools` (puts helm into .tools/bin)")
    return HELM


def run_helm(*args: str, chart: Path = CHART) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(helm_binary()), *args],
        cwd=chart,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@dataclass(frozen=True)
class Manifests:
    documents: tuple[dict[str, Any], ...]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [doc for doc in self.documents if doc["kind"] == kind]

    def kinds(self) -> set[str]:
        return {doc["kind"] for doc in self.documents}

    def get(self, kind: str, name: str) -> dict[str, Any]:
        for doc in self.of_kind(kind):
            if doc["metadata"]["name"] == name:
                return doc
        available = [doc["metadata"]["name"] for doc in self.of_kind(kind)]
        raise KeyError(f"no {kind} named {name!r}; rendered: {available}")

    def has(self, kind: str, name: str) -> bool:
        return any(doc["metadata"]["name"] == name for doc in self.of_kind(kind))

    def gateway(self) -> dict[str, Any]:
        return self.get("Deployment", f"{RELEASE}-llm-gateway")

    def gateway_container(self) -> dict[str, Any]:
        containers = self.gateway()["spec"]["template"]["spec"]["containers"]
        return next(c for c in containers if c["name"] == "gateway")

    def gateway_config(self) -> dict[str, str]:
        return dict(self.get("ConfigMap", f"{RELEASE}-llm-gateway")["data"])


@cache
def _render_cached(
    values: tuple[str, ...],
    sets: tuple[str, ...],
    kube_version: str | None,
    chart: str,
    release: str,
    namespace: str,
) -> Manifests:
    args = ["template", release, ".", "--namespace", namespace]
    for path in values:
        args += ["-f", path]
    for item in sets:
        args += ["--set", item]
    if kube_version:
        args += ["--kube-version", kube_version]
    result = run_helm(*args, chart=Path(chart))
    if result.returncode != 0:
        raise RenderFailed(result.stderr)
    documents = tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)
    return Manifests(documents)


def render(
    *values: Path,
    sets: tuple[str, ...] = (),
    kube_version: str | None = None,
    chart: Path = CHART,
    with_jwt: bool = True,
    release: str = RELEASE,
    namespace: str = NAMESPACE,
) -> Manifests:
    """Render the chart; `with_jwt` adds the JWT secret the default values leave out."""
    all_sets = (DEFAULT_SETS if with_jwt else ()) + tuple(sets)
    return _render_cached(
        tuple(str(v) for v in values), all_sets, kube_version, str(chart), release, namespace
    )


def render_error(*values: Path, sets: tuple[str, ...] = (), with_jwt: bool = True) -> str:
    """The message helm gives when it refuses to render; fails the test if it renders."""
    try:
        render(*values, sets=sets, with_jwt=with_jwt)
    except RenderFailed as failure:
        return failure.stderr
    raise AssertionError(f"helm rendered values={values} sets={sets}, expected a refusal")


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item for item in container.get("env", [])}
