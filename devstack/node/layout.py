"""Where the node keeps its state and which addresses it uses: one frozen value, read by every part.

Everything the node runs listens on loopback or on `node_ip`, an address on a dummy interface of
its own (so no component is reachable from the machine's real network). Pods live in network
namespaces on the node's own bridge; Services are kube-proxy's iptables rules.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_STATE = Path("/var/lib/llm-gateway-node")


@dataclass(frozen=True)
class NodeLayout:
    state: Path
    name: str = "llm-gateway-node"
    interface: str = "lgwnode0"
    node_ip: str = "10.250.0.1"
    pod_cidr: str = "10.244.0.0/24"
    service_cidr: str = "10.96.0.0/16"
    apiserver_service_ip: str = "10.96.0.1"
    dns_ip: str = "10.96.0.10"
    cluster_domain: str = "cluster.local"
    bridge: str = "lgwcni0"
    apiserver_port: int = 6443
    etcd_client_port: int = 23790
    etcd_peer_port: int = 23800

    @classmethod
    def from_env(cls) -> NodeLayout:
        return cls(state=Path(os.environ.get("LLM_GATEWAY_NODE_STATE", str(DEFAULT_STATE))))

    @property
    def pki(self) -> Path:
        return self.state / "pki"

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def run(self) -> Path:
        """Pid files of the running components."""
        return self.state / "run"

    @property
    def etc(self) -> Path:
        return self.state / "etc"

    @property
    def cni_conf_dir(self) -> Path:
        return self.etc / "cni"

    @property
    def containerd_socket(self) -> Path:
        return self.state / "containerd" / "containerd.sock"

    @property
    def kubelet_root(self) -> Path:
        return self.state / "kubelet"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.etc / "admin.kubeconfig"

    @property
    def apiserver_url(self) -> str:
        return f"https://{self.node_ip}:{self.apiserver_port}"

    @property
    def pod_gateway(self) -> str:
        """The bridge's own address, the pods' default route."""
        network, _ = self.pod_cidr.split("/")
        a, b, c, _ = network.split(".")
        return f"{a}.{b}.{c}.1"
