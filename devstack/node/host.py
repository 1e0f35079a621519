"""What the machine itself must provide for the node: Debian packages, kernel settings, the node's
address, and the cleanup of what the node left in the kernel (mounts, links, iptables chains).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from devstack.node.components import NodeError, run
from devstack.node.layout import NodeLayout

# Debian's packages that the node's own builds do not cover. containerd 1.7 is built: bookworm's
# 1.6 predates Kubernetes 1.34's tested range; its runc 1.1 and CNI plugins 1.1 serve as they are.
PACKAGES = {
    "runc": "/usr/sbin/runc",
    "containernetworking-plugins": "/usr/lib/cni/bridge",
    "iptables": "/usr/sbin/iptables",
    "conntrack": "/usr/sbin/conntrack",
    "iproute2": "/usr/sbin/ip",
}
CNI_BIN_DIR = "/usr/lib/cni"
RUNC = "/usr/sbin/runc"
_SYSCTLS = {
    "net/ipv4/ip_forward": "1",
    "net/bridge/bridge-nf-call-iptables": "1",
    "net/bridge/bridge-nf-call-ip6tables": "1",
}


def require_root() -> None:
    if os.geteuid() != 0:
        raise NodeError("the node runs a kubelet and a container runtime: run it as root")


def install_packages(say: Callable[[str], None]) -> None:
    missing = [name for name, path in PACKAGES.items() if not Path(path).exists()]
    if not missing:
        return
    say(f"installing Debian packages: {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing]
    result = subprocess.run(install, capture_output=True, text=True, env=env, check=False)  # noqa: S603
    if result.returncode != 0:
        run(["apt-get", "update", "-qq"], env=env)
        run(install, env=env)


def tune_kernel() -> None:
    for key, value in _SYSCTLS.items():
        path = Path("/proc/sys") / key
        if not path.exists():
            raise NodeError(f"kernel setting {key} is missing (bridge netfilter is required)")
        path.write_text(value)


def add_node_address(layout: NodeLayout) -> None:
    """The node's address lives on lo: local to this machine, reachable from the pods' bridge."""
    shown = run(["ip", "-o", "addr", "show", "dev", "lo"])
    if f" {layout.node_ip}/32 " not in shown:
        run(["ip", "addr", "add", f"{layout.node_ip}/32", "dev", "lo"])


def remove_node_address(layout: NodeLayout) -> None:
    run(["ip", "addr", "del", f"{layout.node_ip}/32", "dev", "lo"], check=False)


FORWARD_CHAIN = "LGWNODE-FORWARD"


def allow_pod_forwarding(layout: NodeLayout) -> None:
    """Pods may reach each other and Services with endpoints; nothing they send leaves the bridge.

    Appended to FORWARD, so after kube-proxy's chains (which refuse a Service without endpoints)
    and after Docker's (whose policy may be DROP). The CNI firewall plugin, which this replaces,
    accepted every packet from a pod above kube-proxy's rules: a pod calling a Service with no
    endpoints (LiteLLM scaled to 0) had its packet routed out of the machine's default route and
    something outside answered 404. The node's own address is local delivery, not FORWARD.
    """
    run(["iptables", "-N", FORWARD_CHAIN], check=False)
    run(["iptables", "-F", FORWARD_CHAIN])
    run(["iptables", "-A", FORWARD_CHAIN, "-o", layout.bridge, "-j", "ACCEPT"])
    leaving = ["-i", layout.bridge, "-j", "REJECT"]
    run(["iptables", "-A", FORWARD_CHAIN, "-p", "tcp", *leaving, "--reject-with", "tcp-reset"])
    run(["iptables", "-A", FORWARD_CHAIN, *leaving])
    jump = ["FORWARD", "-j", FORWARD_CHAIN]
    if subprocess.run(["iptables", "-C", *jump], capture_output=True, check=False).returncode:  # noqa: S603, S607
        run(["iptables", "-A", *jump])


def unmount_under(*roots: Path) -> None:
    """Lazily unmount everything mounted below `roots` (pods' volumes, overlay snapshots, netns)."""
    prefixes = [str(root).rstrip("/") + "/" for root in roots]
    mounts = []
    with open("/proc/self/mountinfo") as info:
        for line in info:
            mount_point = line.split()[4].replace("\\040", " ")
            if any(mount_point.startswith(prefix) for prefix in prefixes):
                mounts.append(mount_point)
    for mount_point in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", mount_point], capture_output=True, check=False)  # noqa: S603, S607


def remove_links(layout: NodeLayout) -> None:
    run(["ip", "link", "del", layout.bridge], check=False)
    # veths of pods whose network was not torn down by the runtime (a killed node).
    for line in run(["ip", "-o", "link", "show", "type", "veth"], check=False).splitlines():
        fields = line.split(": ")
        if len(fields) > 2 and f"master {layout.bridge}" in line:
            name = fields[1].split("@")[0]
            run(["ip", "link", "del", name], check=False)


def flush_node_chains() -> None:
    """The iptables chains the node made: CNI's masquerade, the kubelet's canaries, the pods'
    forwarding chain and whatever `kube-proxy --cleanup` left. Nothing else on a machine names
    its chains KUBE-/CNI-/LGWNODE-."""
    for table in ("nat", "filter", "mangle"):
        listed = run(["iptables-save", "-t", table], check=False).splitlines()
        chains = [
            line[1:].split()[0]
            for line in listed
            if line.startswith((":CNI-", ":KUBE-", f":{FORWARD_CHAIN}"))
        ]
        # Jumps into them from the built-in chains first, then the chains themselves.
        jumps = [
            rule
            for rule in listed
            if rule.startswith("-A ")
            and rule.split()[1] not in chains
            and any(f"-j {chain}" in rule for chain in chains)
        ]
        for rule in jumps:
            delete = shlex.split(rule.replace("-A ", "-D ", 1))
            run(["iptables", "-t", table, *delete], check=False)
        for chain in chains:
            run(["iptables", "-t", table, "-F", chain], check=False)
        for chain in chains:
            run(["iptables", "-t", table, "-X", chain], check=False)


def remove_state(layout: NodeLayout, keep: tuple[str, ...]) -> None:
    if not layout.state.is_dir():
        return
    for child in layout.state.iterdir():
        if child.name in keep:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
