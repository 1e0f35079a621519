"""Last: `helm uninstall` of the session's release leaves nothing of it in the namespace."""

from __future__ import annotations

from tests.cluster.conftest import Release
from tests.cluster.kube import wait_for

KINDS = ",".join(
    (
        "deployments",
        "replicasets",
        "statefulsets",
        "controllerrevisions",
        "pods",
        "services",
        "configmaps",
        "secrets",
        "serviceaccounts",
        "persistentvolumeclaims",
        "endpointslices",
        "networkpolicies",
        "poddisruptionbudgets",
    )
)


def test_helm_uninstall_leaves_nothing_behind(release: Release) -> None:
    kube = release.kube
    selector = f"app.kubernetes.io/instance={release.name}"
    assert kube.get(KINDS, None, "-l", selector)["items"], "the release had objects"
    kube.helm("uninstall", release.name, "--wait", "--timeout", "5m")
    wait_for(
        "every object of the release to be gone",
        lambda: not kube.get(KINDS, None, "-l", selector)["items"],
        timeout=120,
    )
    assert release.name not in kube.helm("list", "-q").stdout.split()
    # Nothing the chart made without the label either: only what Kubernetes itself keeps.
    leftovers = [
        item["metadata"]["name"]
        for item in kube.get("configmaps,secrets,serviceaccounts")["items"]
        if item["metadata"]["name"] not in ("kube-root-ca.crt", "default")
    ]
    assert leftovers == [], leftovers
