"""kubectl and helm against the local node, as a user runs them (real binaries, real apiserver)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.venvs import repo_root

from tests.support.processes import free_port

TOOLS = repo_root() / ".tools" / "bin"
CHART = repo_root() / "chart" / "llm-gateway"


class CommandFailed(AssertionError):
    def __init__(self, argv: Sequence[str], result: subprocess.CompletedProcess[str]) -> None:
        super().__init__(
            f"{' '.join(argv)} exited {result.returncode}\nstdout: {result.stdout[-3000:]}\n"
            f"stderr: {result.stderr[-3000:]}"
        )
        self.result = result


@dataclass(frozen=True)
class Kube:
    kubeconfig: Path
    namespace: str

    def _run(
        self, argv: list[str], check: bool, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=timeout)
        if check and result.returncode != 0:
            raise CommandFailed(argv, result)
        return result

    def kubectl(
        self, *args: str, check: bool = True, timeout: float = 120, namespaced: bool = True
    ) -> subprocess.CompletedProcess[str]:
        argv = [str(TOOLS / "kubectl"), f"--kubeconfig={self.kubeconfig}"]
        if namespaced:
            argv.append(f"--namespace={self.namespace}")
        return self._run([*argv, *args], check, timeout)

    def helm(
        self, *args: str, check: bool = True, timeout: float = 900
    ) -> subprocess.CompletedProcess[str]:
        argv = [
            str(TOOLS / "helm"),
            f"--kubeconfig={self.kubeconfig}",
            f"--namespace={self.namespace}",
            *args,
        ]
        return self._run(argv, check, timeout)

    def get(self, kind: str, name: str | None = None, *selector: str) -> Any:
        args = ["get", kind, *([name] if name else []), *selector, "-o", "json"]
        return json.loads(self.kubectl(*args).stdout)

    def pods(self, selector: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.get("pods", None, "-l", selector)["items"]
        return items

    def logs(self, pod: str, *args: str) -> str:
        return self.kubectl("logs", pod, *args, check=False).stdout


def ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def restarts(pod: dict[str, Any]) -> int:
    return sum(s.get("restartCount", 0) for s in pod["status"].get("containerStatuses", []))


def wait_for(
    description: str, check: Callable[[], bool], timeout: float, interval: float = 0.5
) -> float:
    """Poll `check` until it holds; seconds waited. AssertionError naming `description` if not."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {description}")


@contextlib.contextmanager
def port_forward(kube: Kube, target: str, remote_port: int) -> Iterator[str]:
    """`kubectl port-forward TARGET LOCAL:REMOTE` as a user runs it; yields the local URL."""
    local = free_port()
    argv = [
        str(TOOLS / "kubectl"),
        f"--kubeconfig={kube.kubeconfig}",
        f"--namespace={kube.namespace}",
        "port-forward",
        target,
        f"{local}:{remote_port}",
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # "Forwarding from 127.0.0.1:N -> M" once listening
        if "Forwarding from" not in line:
            proc.kill()
            rest = proc.stdout.read()
            raise AssertionError(f"kubectl port-forward did not start: {line}{rest}")
        yield f"http://127.0.0.1:{local}"
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
