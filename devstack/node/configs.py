"""The node's configuration files, rendered from its layout (pure functions of their inputs).

Choices that differ from a kubeadm node, and why:
- cgroupfs driver: PID 1 here is not systemd.
- failSwapOn false, and eviction thresholds near zero: a shared build machine has whatever disk and
  memory it has, and a disk-pressure taint would evict the chart's pods mid-test.
- No `forward` in CoreDNS: the machine has no network beyond its package registries; cluster
  names are what the workloads resolve.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from devstack.node.layout import NodeLayout

PAUSE_IMAGE = "registry.k8s.io/pause:3.10.1"
COREDNS_IMAGE = "registry.k8s.io/coredns/coredns:v1.12.4"


def kubeconfig(layout: NodeLayout, user: str, cert: Path, key: Path) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": layout.name,
                    "cluster": {
                        "server": layout.apiserver_url,
                        "certificate-authority": str(layout.pki / "ca.crt"),
                    },
                }
            ],
            "users": [
                {"name": user, "user": {"client-certificate": str(cert), "client-key": str(key)}}
            ],
            "contexts": [{"name": layout.name, "context": {"cluster": layout.name, "user": user}}],
            "current-context": layout.name,
        },
        sort_keys=False,
    )


def containerd_config(layout: NodeLayout, runc: str, cni_bin_dir: str) -> str:
    root = layout.state / "containerd"
    return f"""version = 2
root = "{root / "root"}"
state = "{root / "state"}"

[grpc]
  address = "{layout.containerd_socket}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  enable_unprivileged_ports = false
  # This machine's root lacks CAP_SYS_RESOURCE, so no process may lower its oom_score_adj: the
  # kubelet's -998 for sandboxes (and -997 for Guaranteed pods) would fail every pod start.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "{runc}"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_bin_dir}"
    conf_dir = "{layout.cni_conf_dir}"
"""


def cni_conflist(layout: NodeLayout) -> str:
    """bridge + host-local for pod addresses, portmap for hostPorts. No `firewall` plugin: its
    blanket accept of pod traffic sits above kube-proxy's rules (host.allow_pod_forwarding)."""
    return json.dumps(
        {
            "cniVersion": "1.0.0",
            "name": "llm-gateway-node",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": layout.bridge,
                    "isGateway": True,
                    "ipMasq": True,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": layout.pod_cidr, "gateway": layout.pod_gateway}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(layout.state / "cni-ipam"),
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        },
        indent=2,
    )


def kubelet_config(layout: NodeLayout) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": layout.node_ip,
            "port": 10250,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": 10248,
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(layout.pki / "ca.crt")},
            },
            "authorization": {"mode": "Webhook"},
            "tlsCertFile": str(layout.pki / "kubelet-serving.crt"),
            "tlsPrivateKeyFile": str(layout.pki / "kubelet-serving.key"),
            "cgroupDriver": "cgroupfs",
            "containerRuntimeEndpoint": f"unix://{layout.containerd_socket}",
            "failSwapOn": False,
            "clusterDNS": [layout.dns_ip],
            "clusterDomain": layout.cluster_domain,
            "resolvConf": str(layout.etc / "resolv.conf"),
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
                "nodefs.inodesFree": "1%",
            },
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "serializeImagePulls": False,
            "maxPods": 60,
            "shutdownGracePeriod": "0s",
            "staticPodPath": "",
            "rotateCertificates": False,
            "serverTLSBootstrap": False,
        },
        sort_keys=False,
    )


def kube_proxy_config(layout: NodeLayout, kubeconfig_path: Path) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "mode": "iptables",
            "clientConnection": {"kubeconfig": str(kubeconfig_path)},
            "clusterCIDR": layout.pod_cidr,
            "bindAddress": "127.0.0.1",
            "healthzBindAddress": "127.0.0.1:10256",
            "metricsBindAddress": "127.0.0.1:10249",
            "nodePortAddresses": [f"{layout.node_ip}/32"],
            # The container runtime's conntrack limits are the machine's own business.
            "conntrack": {"maxPerCore": 0},
        },
        sort_keys=False,
    )


# CoreDNS runs as nobody without capabilities: it listens above 1024 and the Service maps 53 there
# (upstream's image grants the binary CAP_NET_BIND_SERVICE with setcap, a FROM scratch copy can't).
_DNS_CONTAINER_PORT = 1053


def coredns_manifests(layout: NodeLayout) -> str:
    corefile = (
        f".:{_DNS_CONTAINER_PORT} {{\n"
        "    errors\n"
        "    health {\n"
        "        lameduck 5s\n"
        "    }\n"
        "    ready\n"
        f"    kubernetes {layout.cluster_domain} in-addr.arpa ip6.arpa {{\n"
        "        pods insecure\n"
        "        fallthrough in-addr.arpa ip6.arpa\n"
        "        ttl 30\n"
        "    }\n"
        "    cache 30\n"
        "    loadbalance\n"
        "}\n"
    )
    labels = {"k8s-app": "kube-dns"}
    documents = [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "coredns", "namespace": "kube-system"},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "system:coredns"},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["endpoints", "services", "pods", "namespaces"],
                    "verbs": ["list", "watch"],
                },
                {
                    "apiGroups": ["discovery.k8s.io"],
                    "resources": ["endpointslices"],
                    "verbs": ["list", "watch"],
                },
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "system:coredns"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "system:coredns",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": "kube-system"}],
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "coredns", "namespace": "kube-system"},
            "data": {"Corefile": corefile},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "coredns", "namespace": "kube-system", "labels": labels},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": "coredns",
                        "dnsPolicy": "Default",
                        "priorityClassName": "system-cluster-critical",
                        "containers": [
                            {
                                "name": "coredns",
                                "image": COREDNS_IMAGE,
                                "imagePullPolicy": "Never",
                                "args": ["-conf", "/etc/coredns/Corefile"],
                                "ports": [
                                    {
                                        "name": "dns",
                                        "containerPort": _DNS_CONTAINER_PORT,
                                        "protocol": "UDP",
                                    },
                                    {
                                        "name": "dns-tcp",
                                        "containerPort": _DNS_CONTAINER_PORT,
                                        "protocol": "TCP",
                                    },
                                ],
                                "resources": {"requests": {"cpu": "20m", "memory": "32Mi"}},
                                "securityContext": {
                                    "allowPrivilegeEscalation": False,
                                    "readOnlyRootFilesystem": True,
                                    "runAsNonRoot": True,
                                    "capabilities": {"drop": ["ALL"]},
                                },
                                "readinessProbe": {
                                    "httpGet": {"path": "/ready", "port": 8181},
                                    "periodSeconds": 2,
                                },
                                "livenessProbe": {
                                    "httpGet": {"path": "/health", "port": 8080},
                                    "periodSeconds": 10,
                                },
                                "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns"}],
                            }
                        ],
                        "volumes": [{"name": "config", "configMap": {"name": "coredns"}}],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": labels},
            "spec": {
                "selector": labels,
                "clusterIP": layout.dns_ip,
                "ports": [
                    {"name": "dns", "port": 53, "targetPort": "dns", "protocol": "UDP"},
                    {"name": "dns-tcp", "port": 53, "targetPort": "dns-tcp", "protocol": "TCP"},
                ],
            },
        },
    ]
    return yaml.safe_dump_all(documents, sort_keys=False)
