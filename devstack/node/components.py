"""The node's processes: how each component is started, what proves it is up, and how it stops.

Each component runs detached in its own session with its log under `<state>/logs` and its pid
under `<state>/run`, so `python -m devstack.node down` (another process, later) can stop it. The
order of `COMPONENTS` is the start order; `down` walks it backwards.
"""

from __future__ import annotations

import contextlib
import os
import signal
import ssl
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from devstack.node.layout import NodeLayout


class NodeError(RuntimeError):
    """The node cannot be brought up or down; the message says which part and where its log is."""


@dataclass(frozen=True)
class Component:
    name: str
    argv: Callable[[NodeLayout, Path], list[str]]  # (layout, bin dir) -> argv
    ready: Callable[[NodeLayout], bool]
    ready_timeout: float = 60.0


def _tls(layout: NodeLayout, client: str = "admin") -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(layout.pki / "ca.crt"))
    context.load_cert_chain(str(layout.pki / f"{client}.crt"), str(layout.pki / f"{client}.key"))
    return context


def _get_ok(url: str, verify: ssl.SSLContext | bool = False) -> bool:
    with contextlib.suppress(httpx.HTTPError, OSError):
        return httpx.get(url, verify=verify, timeout=2.0).status_code == 200
    return False


def _apiserver_ready(layout: NodeLayout) -> bool:
    return _get_ok(f"{layout.apiserver_url}/readyz", _tls(layout))


def _etcd_argv(layout: NodeLayout, bins: Path) -> list[str]:
    client = f"http://127.0.0.1:{layout.etcd_client_port}"
    peer = f"http://127.0.0.1:{layout.etcd_peer_port}"
    return [
        str(bins / "etcd"),
        "--name=node",
        f"--data-dir={layout.state / 'etcd'}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=node={peer}",
        # A throwaway single-member store on a shared disk: fsync latency is not what is tested.
        "--unsafe-no-fsync",
        "--log-level=warn",
    ]


def _apiserver_argv(layout: NodeLayout, bins: Path) -> list[str]:
    pki = layout.pki
    return [
        str(bins / "kube-apiserver"),
        f"--etcd-servers=http://127.0.0.1:{layout.etcd_client_port}",
        f"--bind-address={layout.node_ip}",
        f"--advertise-address={layout.node_ip}",
        f"--secure-port={layout.apiserver_port}",
        f"--service-cluster-ip-range={layout.service_cidr}",
        f"--tls-cert-file={pki / 'apiserver.crt'}",
        f"--tls-private-key-file={pki / 'apiserver.key'}",
        f"--client-ca-file={pki / 'ca.crt'}",
        f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
        f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
        f"--kubelet-certificate-authority={pki / 'ca.crt'}",
        "--kubelet-preferred-address-types=InternalIP",
        f"--service-account-issuer=https://kubernetes.default.svc.{layout.cluster_domain}",
        f"--service-account-key-file={pki / 'sa.pub'}",
        f"--service-account-signing-key-file={pki / 'sa.key'}",
        "--authorization-mode=Node,RBAC",
        "--enable-admission-plugins=NodeRestriction",
        "--allow-privileged=true",
        "--profiling=false",
        "--v=1",
    ]


def _controller_manager_argv(layout: NodeLayout, bins: Path) -> list[str]:
    pki = layout.pki
    kubeconfig = layout.etc / "controller-manager.kubeconfig"
    return [
        str(bins / "kube-controller-manager"),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--cluster-signing-cert-file={pki / 'ca.crt'}",
        f"--cluster-signing-key-file={pki / 'ca.key'}",
        f"--root-ca-file={pki / 'ca.crt'}",
        f"--service-account-private-key-file={pki / 'sa.key'}",
        f"--service-cluster-ip-range={layout.service_cidr}",
        "--use-service-account-credentials=true",
        "--leader-elect=false",
        f"--cert-dir={layout.state / 'controller-manager'}",
        "--profiling=false",
        "--v=1",
    ]


def _scheduler_argv(layout: NodeLayout, bins: Path) -> list[str]:
    kubeconfig = layout.etc / "scheduler.kubeconfig"
    return [
        str(bins / "kube-scheduler"),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        "--leader-elect=false",
        f"--cert-dir={layout.state / 'scheduler'}",
        "--profiling=false",
        "--v=1",
    ]


def _containerd_argv(layout: NodeLayout, bins: Path) -> list[str]:
    return [str(bins / "containerd"), f"--config={layout.etc / 'containerd.toml'}"]


def _kubelet_argv(layout: NodeLayout, bins: Path) -> list[str]:
    return [
        str(bins / "kubelet"),
        f"--config={layout.etc / 'kubelet.yaml'}",
        f"--kubeconfig={layout.etc / 'kubelet.kubeconfig'}",
        f"--root-dir={layout.kubelet_root}",
        f"--node-ip={layout.node_ip}",
        f"--hostname-override={layout.name}",
        "--v=1",
    ]


def _kube_proxy_argv(layout: NodeLayout, bins: Path) -> list[str]:
    return [
        str(bins / "kube-proxy"),
        f"--config={layout.etc / 'kube-proxy.yaml'}",
        f"--hostname-override={layout.name}",
        "--v=1",
    ]


COMPONENTS: tuple[Component, ...] = (
    Component(
        "etcd",
        _etcd_argv,
        lambda layout: _get_ok(f"http://127.0.0.1:{layout.etcd_client_port}/health"),
    ),
    Component("kube-apiserver", _apiserver_argv, _apiserver_ready, ready_timeout=120.0),
    Component(
        "kube-controller-manager",
        _controller_manager_argv,
        lambda layout: _get_ok("https://127.0.0.1:10257/healthz"),
    ),
    Component(
        "kube-scheduler",
        _scheduler_argv,
        lambda layout: _get_ok("https://127.0.0.1:10259/healthz"),
    ),
    Component("containerd", _containerd_argv, lambda layout: layout.containerd_socket.is_socket()),
    Component("kubelet", _kubelet_argv, lambda layout: _get_ok("http://127.0.0.1:10248/healthz")),
    Component(
        "kube-proxy", _kube_proxy_argv, lambda layout: _get_ok("http://127.0.0.1:10256/healthz")
    ),
)


def _pid_file(layout: NodeLayout, name: str) -> Path:
    return layout.run / f"{name}.pid"


def running_pid(layout: NodeLayout, name: str) -> int | None:
    path = _pid_file(layout, name)
    try:
        pid = int(path.read_text())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    # A pid can be reused: only trust it if the process still runs our binary.
    with contextlib.suppress(OSError):
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
        if name not in Path(cmdline).name and Path(cmdline).name != "kube":
            return None
    return pid


def _spawn_detached(argv: list[str], log_path: Path, env: dict[str, str]) -> int:
    """Start `argv` in a session of its own, its output appended to `log_path`; its pid.

    Through a shell that exits at once, so the component outlives this process (it is stopped by
    pid, by `down`) and no Popen object is left to warn that its child still runs.
    """
    script = 'setsid "$@" >>"$LOG_PATH" 2>&1 </dev/null & echo $!'
    started = subprocess.run(  # noqa: S603 - fixed script, argv passed as arguments
        ["/bin/sh", "-c", script, "sh", *argv],
        env={**env, "LOG_PATH": str(log_path)},
        capture_output=True,
        text=True,
        check=True,
    )
    return int(started.stdout.strip())


def start(component: Component, layout: NodeLayout, bins: Path, env: dict[str, str]) -> None:
    if running_pid(layout, component.name) is not None:
        return
    layout.logs.mkdir(parents=True, exist_ok=True)
    layout.run.mkdir(parents=True, exist_ok=True)
    log_path = layout.logs / f"{component.name}.log"
    pid = _spawn_detached(component.argv(layout, bins), log_path, env)
    _pid_file(layout, component.name).write_text(str(pid))
    deadline = time.monotonic() + component.ready_timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            tail = log_path.read_text(errors="replace")[-3000:]
            raise NodeError(f"{component.name} exited; {log_path}:\n{tail}")
        if component.ready(layout):
            return
        time.sleep(0.25)
    raise NodeError(
        f"{component.name} not up within {component.ready_timeout:.0f} s; see {log_path}"
    )


def stop(name: str, layout: NodeLayout, timeout: float = 20.0) -> None:
    pid = running_pid(layout, name)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.1)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
    _pid_file(layout, name).unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A reaped-late child shows as a zombie; it no longer runs.
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    return False


def run(argv: Sequence[str], *, check: bool = True, env: dict[str, str] | None = None) -> str:
    """A short command; its output, or NodeError with the output when it fails."""
    result = subprocess.run(  # noqa: S603 - fixed argv
        list(argv), capture_output=True, text=True, env=env, check=False
    )
    if check and result.returncode != 0:
        raise NodeError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr[-2000:]}")
    return result.stdout
