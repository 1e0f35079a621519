"""The node's build recipes and configs (devstack/node), as pure functions of their inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from devstack.node import configs, gobuild, versions
from devstack.node.layout import NodeLayout

KK_GOMOD = """module k8s.io/kubernetes

go 1.24.0

require (
\tgithub.com/spf13/cobra v1.9.1
\tk8s.io/api v0.0.0
\tk8s.io/client-go v0.0.0
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/client-go => ./staging/src/k8s.io/client-go
\tk8s.io/cri-api => ./staging/src/k8s.io/cri-api
)
"""


def test_the_wrapper_replaces_exactly_the_staging_modules_with_their_published_versions() -> None:
    gomod = gobuild.wrapper_gomod(KK_GOMOD, "v1.34.4", "example.local/kube")
    assert "require k8s.io/kubernetes v1.34.4" in gomod
    assert "go 1.24.0" in gomod
    replaced = [line.strip() for line in gomod.splitlines() if "=>" in line]
    assert replaced == [
        "k8s.io/api => k8s.io/api v0.34.4",
        "k8s.io/client-go => k8s.io/client-go v0.34.4",
        "k8s.io/cri-api => k8s.io/cri-api v0.34.4",
    ]


def test_a_go_mod_without_staging_replaces_is_refused() -> None:
    with pytest.raises(ValueError, match="staging"):
        gobuild.staging_replaces("module example.com/x\n\ngo 1.24\n")


@pytest.mark.parametrize(
    ("kubernetes", "staging"),
    [pytest.param("v1.34.4", "v0.34.4", id="1.34"), pytest.param("v1.35.0", "v0.35.0", id="1.35")],
)
def test_staging_versions_follow_the_kubernetes_version(kubernetes: str, staging: str) -> None:
    assert versions.staging_version(kubernetes) == staging


def test_version_ldflags_make_the_servers_report_the_real_version() -> None:
    flags = gobuild.version_ldflags("v1.34.4")
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        assert f"-X {package}.gitVersion=v1.34.4" in flags
        assert f"-X {package}.gitMinor=34" in flags


def test_a_changed_recipe_gets_another_build_folder() -> None:
    etcd = gobuild.tools()["etcd"]
    same = gobuild._recipe_key(etcd, "main")
    assert gobuild._recipe_key(etcd, "main") == same
    assert gobuild._recipe_key(etcd, "other main") != same


def test_configs_point_every_component_at_the_layout(tmp_path: Path) -> None:
    layout = NodeLayout(state=tmp_path)
    kubelet = yaml.safe_load(configs.kubelet_config(layout))
    assert kubelet["cgroupDriver"] == "cgroupfs"
    assert kubelet["clusterDNS"] == [layout.dns_ip]
    assert kubelet["containerRuntimeEndpoint"] == f"unix://{layout.containerd_socket}"
    cni = json.loads(configs.cni_conflist(layout))
    bridge = cni["plugins"][0]
    assert bridge["ipam"]["ranges"][0][0]["subnet"] == layout.pod_cidr
    assert "restrict_oom_score_adj = true" in configs.containerd_config(layout, "/r", "/c")
    services = [
        doc
        for doc in yaml.safe_load_all(configs.coredns_manifests(layout))
        if doc["kind"] == "Service"
    ]
    assert services[0]["spec"]["clusterIP"] == layout.dns_ip
