"""Pinned versions of everything the local Kubernetes node is built from (one place to bump)."""

from __future__ import annotations

# 1.34.x is the last minor that runs on a cgroup v1 host with only a warning (1.35 refuses
# without failCgroupV1: false). The staging modules are published as v0.<minor>.<patch>.
KUBERNETES = "v1.34.4"
# etcd's server module: 3.5 is what 1.34's apiserver is tested with; go install refuses its
# replace directives, so it is built from a copy like skaffold (see gobuild.py).
ETCD = "v3.5.21"
CRI_TOOLS = "v1.34.0"
COREDNS = "v1.12.4"
CONTAINERD = "v1.7.29"

SKAFFOLD = "v2.16.1"  # the newest skaffold the module proxy serves
# skaffold 2.16 probes `helm version --client`, a flag Helm 4 dropped: it gets a Helm 3 of its own.
HELM3 = "v3.21.4"


def staging_version(kubernetes: str = KUBERNETES) -> str:
    """k8s.io/api & co. for kubernetes v1.M.P are tagged v0.M.P."""
    major, minor, patch = kubernetes.lstrip("v").split(".")
    if major != "1":
        raise ValueError(f"unexpected Kubernetes version {kubernetes}")
    return f"v0.{minor}.{patch}"
