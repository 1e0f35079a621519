"""Bring the single-node cluster up and down.

`up` builds what is missing (gobuild), prepares the host, writes the certificates and configs,
starts the components in order, waits for the Node to be Ready, and deploys CoreDNS. `down`
removes every pod through the runtime, stops the components in reverse, and removes what they
left in the kernel (mounts, links, iptables chains, the node address). Both are idempotent.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from devstack.node import configs, gobuild, host, pki, system_images
from devstack.node.components import COMPONENTS, NodeError, run, running_pid, start, stop
from devstack.node.layout import NodeLayout
from devstack.venvs import repo_root

# Kept across `down`: the node's identity (so kubeconfigs stay valid) and the image store (so
# a restart does not re-import gigabytes of images).
_KEPT_STATE = ("pki", "containerd")


def say(message: str) -> None:
    sys.stdout.write(f"[node] {message}\n")
    sys.stdout.flush()


def kubectl_path() -> Path:
    local = repo_root() / ".tools" / "bin" / "kubectl"
    if local.is_file():
        return local
    raise NodeError("kubectl not found: run `make tools` first")


def kubectl(layout: NodeLayout, *args: str, check: bool = True) -> str:
    return run([str(kubectl_path()), f"--kubeconfig={layout.admin_kubeconfig}", *args], check=check)


def _write_pki_and_configs(layout: NodeLayout) -> None:
    ca = pki.CertificateAuthority(layout.pki)
    ca.issue(
        "apiserver",
        pki.subject_name("kube-apiserver"),
        server_names=(
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            f"kubernetes.default.svc.{layout.cluster_domain}",
            "localhost",
            layout.name,
        ),
        server_ips=("127.0.0.1", layout.node_ip, layout.apiserver_service_ip),
    )
    ca.issue(
        "kubelet-serving",
        pki.subject_name(f"system:node:{layout.name}", "system:nodes"),
        server_names=(layout.name, "localhost"),
        server_ips=("127.0.0.1", layout.node_ip),
    )
    pki.service_account_keys(layout.pki)
    layout.etc.mkdir(parents=True, exist_ok=True)
    for identity in pki.client_identities(layout.name):
        cert, key = ca.issue_client(identity)
        stem = identity.name.removesuffix("-client")
        kubeconfig_path = layout.etc / f"{stem}.kubeconfig"
        kubeconfig_path.write_text(configs.kubeconfig(layout, identity.common_name, cert, key))
        kubeconfig_path.chmod(0o600)
    layout.cni_conf_dir.mkdir(parents=True, exist_ok=True)
    (layout.cni_conf_dir / "10-llm-gateway-node.conflist").write_text(configs.cni_conflist(layout))
    (layout.etc / "containerd.toml").write_text(
        configs.containerd_config(layout, host.RUNC, host.CNI_BIN_DIR)
    )
    (layout.etc / "kubelet.yaml").write_text(configs.kubelet_config(layout))
    (layout.etc / "kube-proxy.yaml").write_text(
        configs.kube_proxy_config(layout, layout.etc / "kube-proxy.kubeconfig")
    )
    # Pods with dnsPolicy Default (CoreDNS) get this: the machine has no resolver to forward to.
    (layout.etc / "resolv.conf").write_text(f"search {layout.cluster_domain}\n")


def _wait(description: str, check: object, timeout: float) -> None:
    assert callable(check)
    started = time.monotonic()
    last_report = started
    while time.monotonic() - started < timeout:
        if check():
            return
        if time.monotonic() - last_report > 10:
            say(f"still waiting for {description} ({time.monotonic() - started:.0f} s)")
            last_report = time.monotonic()
        time.sleep(1)
    raise NodeError(f"timed out after {timeout:.0f} s waiting for {description}")


def _node_ready(layout: NodeLayout) -> bool:
    raw = kubectl(layout, "get", "node", layout.name, "-o", "json", check=False)
    if not raw:
        return False
    conditions = json.loads(raw).get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def _coredns_ready(layout: NodeLayout) -> bool:
    raw = kubectl(
        layout, "-n", "kube-system", "get", "deploy", "coredns", "-o", "json", check=False
    )
    return bool(raw) and json.loads(raw).get("status", {}).get("readyReplicas", 0) >= 1


def up(layout: NodeLayout) -> None:
    started = time.monotonic()
    host.require_root()
    host.install_packages(say)
    bins = gobuild.ensure(gobuild.NODE_PROGRAMS)
    images = system_images.build()
    host.tune_kernel()
    host.add_node_address(layout)
    host.allow_pod_forwarding(layout)
    _write_pki_and_configs(layout)
    env = {
        **os.environ,
        "PATH": f"{bins}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    }
    for component in COMPONENTS:
        if component.name == "kubelet":
            # Before the kubelet asks for its first sandbox.
            load_images(layout, images)
        t0 = time.monotonic()
        start(component, layout, bins, env)
        say(f"{component.name} up ({time.monotonic() - t0:.1f} s)")
    _wait("the node to be Ready", lambda: _node_ready(layout), 120)
    manifests = layout.etc / "coredns.yaml"
    manifests.write_text(configs.coredns_manifests(layout))
    kubectl(layout, "apply", "-f", str(manifests))
    _wait("CoreDNS to be Ready", lambda: _coredns_ready(layout), 120)
    say(
        f"node {layout.name} Ready in {time.monotonic() - started:.0f} s; "
        f"export KUBECONFIG={layout.admin_kubeconfig}"
    )


def load_images(layout: NodeLayout, tags: Sequence[str]) -> None:
    """Import the Docker images the node does not already hold at the same image id."""
    started = time.monotonic()
    stale = [tag for tag in tags if not system_images.node_has(tag, layout, gobuild.bin_dir())]
    if stale:
        system_images.import_into_node(stale, gobuild.bin_dir() / "ctr", layout.containerd_socket)
    fresh = sorted(set(tags) - set(stale))
    say(
        f"loaded {', '.join(stale) or 'nothing'} into the node "
        f"({time.monotonic() - started:.0f} s)"
        + (f"; already there: {', '.join(fresh)}" if fresh else "")
    )


def down(layout: NodeLayout, purge: bool = False) -> None:
    host.require_root()
    bins = gobuild.bin_dir()
    for name in ("kube-proxy", "kubelet"):
        stop(name, layout)
    if running_pid(layout, "containerd") is not None and (bins / "crictl").exists():
        endpoint = f"unix://{layout.containerd_socket}"
        crictl = [str(bins / "crictl"), f"--runtime-endpoint={endpoint}", "--timeout=30s"]
        run([*crictl, "rmp", "--force", "--all"], check=False)  # stops running sandboxes too
    for component in reversed(COMPONENTS):
        stop(component.name, layout)
    _kill_orphan_shims(layout)
    if (bins / "kube-proxy").exists():
        run([str(bins / "kube-proxy"), "--cleanup"], check=False)
    host.flush_node_chains()
    host.unmount_under(layout.state, Path("/run/netns"))
    host.remove_links(layout)
    host.remove_node_address(layout)
    host.remove_state(layout, keep=() if purge else _KEPT_STATE)
    say("node stopped; nothing of it is running")


def _kill_orphan_shims(layout: NodeLayout) -> None:
    """Shims outlive containerd by design; ours are the ones naming our socket."""
    socket = str(layout.containerd_socket).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"containerd-shim" in cmdline and socket in cmdline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), 9)


def status(layout: NodeLayout) -> dict[str, int | None]:
    return {component.name: running_pid(layout, component.name) for component in COMPONENTS}
