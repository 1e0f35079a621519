"""`python -m devstack run`: the whole local stack in one foreground command (`make run`).

Order: build the LiteLLM and MLflow venvs (in parallel, only when missing or stale), start the
MLflow server and the LiteLLM proxy (shipped config: offline mock models, no keys needed), wait
until both answer, then the gateway (`llm-gateway serve`, gunicorn) in development mode. The
gateway's JSON logs go to this terminal; the proxy's and MLflow's to data/logs/*.log.

Ctrl-C or SIGTERM stops the gateway first (gunicorn drains in-flight requests), then the proxy
and MLflow. If any part dies on its own, the others are stopped and the exit status is 1.

The runner talks to the developer on plain stdout; it is not the service and has no JSON logger.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

from devstack.litellm import ensure_litellm_venv, start_litellm_proxy

SHIPPED_LITELLM_CONFIG = Path("chart/llm-gateway/charts/litellm/files/config.yaml")
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class StackPorts:
    gateway: int = 8000
    litellm: int = 4000
    mlflow: int = 5000


class StackError(RuntimeError):
    """The stack cannot start; the message says what to do."""


def say(message: str) -> None:
    sys.stdout.write(f"[devstack] {message}\n")
    sys.stdout.flush()


def ensure_port_free(port: int, what: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            raise StackError(
                f"port {port} (for {what}) is already in use: stop whatever listens there "
                f"(`ss -ltnp 'sport = :{port}'`) and run again"
            ) from None


def build_venvs(root: Path) -> tuple[Path, Path]:
    """Both side venvs, built concurrently (each one is a no-op when already current)."""
    from devstack.mlflow import ensure_mlflow_venv

    started = time.monotonic()
    say("checking the LiteLLM and MLflow venvs under .stack/ (first run installs them)")
    with ThreadPoolExecutor(max_workers=2) as pool:
        litellm = pool.submit(ensure_litellm_venv, root)
        mlflow = pool.submit(ensure_mlflow_venv, root)
        venvs = (litellm.result(), mlflow.result())
    say(f"venvs ready in {time.monotonic() - started:.1f}s")
    return venvs


def gateway_env(root: Path, ports: StackPorts, litellm_key: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME")}
    env.update(
        {
            "ENVIRONMENT": "development",
            "PORT": str(ports.gateway),
            "LITELLM_BASE_URL": f"http://{LOOPBACK}:{ports.litellm}",
            "LITELLM_API_KEY": litellm_key,
            "MLFLOW_TRACKING_URI": f"http://{LOOPBACK}:{ports.mlflow}",
        }
    )
    # A development stack with generated secrets listens on loopback unless told otherwise.
    env.setdefault("HOST", LOOPBACK)
    return env


def banner(ports: StackPorts, logs: Path) -> str:
    gateway = f"http://localhost:{ports.gateway}"
    return f"""
  llm-gateway   {gateway}   (JSON logs below)
  LiteLLM proxy http://{LOOPBACK}:{ports.litellm}   (log: {logs / "litellm.log"})
  MLflow UI     http://{LOOPBACK}:{ports.mlflow}   (log: {logs / "mlflow.log"})

  Try (development users: admin / user, password from DEV_PASSWORD, default dev-password):
    TOKEN=$(curl -s {gateway}/auth/login -H 'Content-Type: application/json' \\
      -d '{{"username":"admin","password":"dev-password"}}' | jq -r .access_token)
    curl -s {gateway}/llm/generate -H "Authorization: Bearer $TOKEN" \\
      -H 'Content-Type: application/json' -d '{{"prompt":"Hello!"}}' | jq
    curl -s {gateway}/models -H "Authorization: Bearer $TOKEN" | jq
    curl -s {gateway}/health | jq

  Ctrl-C stops everything.
"""


class Child(Protocol):
    """What the runner needs of a started service (ServiceProcess, devstack.mlflow's server)."""

    proc: subprocess.Popen[bytes]
    log_path: Path

    def stop(self, timeout: float = ...) -> int | None: ...


class Stack:
    """The three children, stopped in reverse order of dependence."""

    def __init__(self) -> None:
        self.children: list[tuple[str, Child]] = []
        self.gateway: subprocess.Popen[bytes] | None = None

    def stop(self) -> None:
        if self.gateway is not None and self.gateway.poll() is None:
            say("stopping the gateway (graceful drain)")
            self.gateway.send_signal(signal.SIGTERM)
            try:
                self.gateway.wait(timeout=40)  # gunicorn's graceful timeout is 30 s
            except subprocess.TimeoutExpired:
                os.killpg(self.gateway.pid, signal.SIGKILL)
                self.gateway.wait(timeout=5)
        for name, child in reversed(self.children):
            if child.proc.poll() is None:
                say(f"stopping {name}")
            child.stop()

    def first_exit(self) -> str | None:
        """Name of a part that exited on its own, if any."""
        if self.gateway is not None and self.gateway.poll() is not None:
            return f"the gateway (exit status {self.gateway.returncode})"
        for name, child in self.children:
            if child.proc.poll() is not None:
                return f"{name} (see {child.log_path})"
        return None


def _wait_gateway(stack: Stack, port: int, stop_requested: list[int]) -> None:
    """Until /livez answers 200; StackError when the gateway exits or does not come up."""
    assert stack.gateway is not None
    deadline = time.monotonic() + 90
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline and not stop_requested:
            if stack.gateway.poll() is not None:
                raise StackError(f"the gateway exited with status {stack.gateway.returncode}")
            try:
                if client.get(f"http://{LOOPBACK}:{port}/livez").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
    if not stop_requested:
        raise StackError("the gateway did not answer /livez within 90 s")


def run(root: Path, ports: StackPorts | None = None) -> int:
    ports = ports or StackPorts()
    config = root / SHIPPED_LITELLM_CONFIG
    if not config.is_file():
        raise StackError(f"missing the shipped LiteLLM config {config}")
    gateway_bin = root / ".venv" / "bin" / "llm-gateway"
    if not gateway_bin.is_file():
        raise StackError("no .venv/bin/llm-gateway: run `make install` (make run does it)")
    for port, what in (
        (ports.gateway, "the gateway"),
        (ports.litellm, "LiteLLM"),
        (ports.mlflow, "MLflow"),
    ):
        ensure_port_free(port, what)
    litellm_venv, mlflow_venv = build_venvs(root)
    logs = root / "data" / "logs"
    # LiteLLM refuses to start without a master key; one per run, handed to the gateway only.
    litellm_key = os.environ.get("LITELLM_MASTER_KEY") or "sk-dev-" + secrets.token_hex(24)

    stop_requested: list[int] = []

    def request_stop(signum: int, frame: object) -> None:
        stop_requested.append(signum)

    previous: dict[signal.Signals, Any] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, request_stop)
    stack = Stack()
    try:
        from devstack.mlflow import start_mlflow_server

        mlflow = start_mlflow_server(
            mlflow_venv, ports.mlflow, root / "data" / "mlflow", logs / "mlflow.log"
        )
        stack.children.append(("the MLflow server", mlflow))
        say(f"starting the LiteLLM proxy on {LOOPBACK}:{ports.litellm} (shipped mock models)")
        proxy = start_litellm_proxy(
            litellm_venv,
            config,
            ports.litellm,
            logs / "litellm.log",
            {"LITELLM_MASTER_KEY": litellm_key},
        )
        stack.children.append(("the LiteLLM proxy", proxy))
        say(f"LiteLLM proxy ready in {proxy.ready_seconds or 0:.1f}s")
        mlflow.wait_ready(timeout=120)
        say("MLflow server ready")
        if stop_requested:
            return 0
        say(f"starting the gateway on http://localhost:{ports.gateway}")
        stack.gateway = subprocess.Popen(  # noqa: S603 - fixed argv
            [str(gateway_bin), "serve"],
            env=gateway_env(root, ports, litellm_key),
            cwd=root,
            start_new_session=True,  # Ctrl-C reaches the runner, which drains the gateway itself
        )
        _wait_gateway(stack, ports.gateway, stop_requested)
        sys.stdout.write(banner(ports, logs))
        sys.stdout.flush()
        while not stop_requested:
            failed = stack.first_exit()
            if failed:
                say(f"{failed} stopped unexpectedly; stopping the stack")
                return 1
            time.sleep(0.3)
        return 0
    finally:
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        say("stack stopped")
