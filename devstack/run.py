"""`python -m devstack run`: the whole local stack in one foreground command (`make run`).

Order: check the three ports, build the LiteLLM and MLflow venvs (in parallel, only when missing
or stale), start the MLflow server and the LiteLLM proxy (shipped config: offline mock models, no
keys needed), wait until both answer, then the gateway (`llm-gateway serve`, gunicorn) in
development mode. The gateway's JSON logs go to this terminal; the proxy's and MLflow's to
DATA_DIR/logs/*.log (DATA_DIR defaults to ./data).

Ports: 8000 (gateway), 4000 (LiteLLM), 5000 (MLflow) unless moved with `make run PORT=...
LITELLM_PORT=... MLFLOW_PORT=...`; a busy port stops the run before anything is installed or
started, with the variable that moves it and a free port to try.

Every wait longer than a few seconds says what it waits for and for how long so far
(PROGRESS_EVERY). Most of the proxy's start is importing LiteLLM (~7 s of CPU; several times
that on a machine whose cores are busy); its venv is byte-compiled when it is installed
(devstack/venvs.py), so the first start does not also compile ~1500 modules.

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
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx

from devstack.litellm import READY_PATH, ensure_litellm_venv, spawn_litellm_proxy
from devstack.postgres import PostgresServer, PostgresUnavailable, find_postgres_bin

SHIPPED_LITELLM_CONFIG = Path("chart/llm-gateway/charts/litellm/files/config.yaml")
LOOPBACK = "127.0.0.1"
PROGRESS_EVERY = 5.0  # seconds between two "still waiting" lines
LITELLM_READY_TIMEOUT = 300.0
MLFLOW_READY_TIMEOUT = 180.0
GATEWAY_READY_TIMEOUT = 120.0


@dataclass(frozen=True)
class StackPorts:
    gateway: int = 8000
    litellm: int = 4000
    mlflow: int = 5000

    def named(self) -> list[tuple[int, str, str]]:
        """(port, what listens there, the `make run` variable that moves it)."""
        return [
            (self.gateway, "the gateway", "PORT"),
            (self.litellm, "the LiteLLM proxy", "LITELLM_PORT"),
            (self.mlflow, "the MLflow server", "MLFLOW_PORT"),
        ]


class StackError(RuntimeError):
    """The stack cannot start; the message says what to do."""


def say(message: str) -> None:
    sys.stdout.write(f"[devstack] {message}\n")
    sys.stdout.flush()


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def free_port_after(port: int, avoid: set[int]) -> int:
    """The first free port above `port` (not one of `avoid`), to suggest in an error."""
    for candidate in range(port + 1, min(port + 200, 65536)):
        if candidate not in avoid and port_is_free(candidate):
            return candidate
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def check_ports(ports: StackPorts) -> None:
    """StackError naming the `make run` variable for a port that is taken or given twice."""
    named = ports.named()
    wanted = {port for port, _, _ in named}
    seen: dict[int, str] = {}
    for port, what, variable in named:
        if port in seen:
            raise StackError(
                f"{seen[port]} and {variable} are both {port}: give each part its own port"
            )
        seen[port] = variable
        if not port_is_free(port):
            suggestion = free_port_after(port, wanted)
            raise StackError(
                f"port {port} (for {what}) is already in use. Move it with "
                f"`make run {variable}={suggestion}` (or stop whatever listens there: "
                f"`ss -ltnp 'sport = :{port}'`)"
            )


def data_dir(root: Path) -> Path:
    """DATA_DIR from the environment (relative to the repository), else ./data."""
    configured = os.environ.get("DATA_DIR")
    return (root / configured).resolve() if configured else root / "data"


def wait_with_progress(done: Callable[[], bool], what: str, started: float) -> None:
    """Block until `done()`, saying every PROGRESS_EVERY seconds that we still wait."""
    next_report = started + PROGRESS_EVERY
    while not done():
        now = time.monotonic()
        if now >= next_report:
            say(f"still {what} ({now - started:.0f}s so far)")
            next_report = now + PROGRESS_EVERY
        time.sleep(0.2)


def build_venvs(root: Path) -> tuple[Path, Path]:
    """Both side venvs, built concurrently (each one is a no-op when already current)."""
    from devstack.mlflow import ensure_mlflow_venv

    started = time.monotonic()
    say("checking the LiteLLM and MLflow venvs under .stack/ (first run installs them)")
    with ThreadPoolExecutor(max_workers=2) as pool:
        litellm = pool.submit(ensure_litellm_venv, root)
        mlflow = pool.submit(ensure_mlflow_venv, root)
        builds: list[Future[Path]] = [litellm, mlflow]
        wait_with_progress(
            lambda: all(build.done() for build in builds),
            "installing the LiteLLM and MLflow venvs under .stack/ (first run only: a few "
            "minutes, most of it downloading and byte-compiling LiteLLM)",
            started,
        )
        venvs = (litellm.result(), mlflow.result())
    say(f"venvs ready in {time.monotonic() - started:.1f}s")
    return venvs


@dataclass
class Awaited:
    """A started part the runner waits for: ready when GET `url` answers 200."""

    name: str
    url: str
    proc: subprocess.Popen[bytes]
    timeout: float
    doing: str  # what it is busy with, for the progress line
    log: str  # where its output goes, for errors
    started_at: float = field(default_factory=time.monotonic)
    ready_seconds: float | None = None


def wait_until_ready(parts: list[Awaited], stop_requested: list[int]) -> None:
    """Poll every part until each answers, printing one progress line every PROGRESS_EVERY
    seconds with the elapsed time and what is still awaited. StackError when a part exits or
    outlasts its timeout."""
    started = min(part.started_at for part in parts)
    next_report = time.monotonic() + PROGRESS_EVERY
    pending = list(parts)
    with httpx.Client(timeout=2.0) as client:
        while pending and not stop_requested:
            for part in list(pending):
                if part.proc.poll() is not None:
                    raise StackError(
                        f"{part.name} exited with status {part.proc.returncode} before it was "
                        f"ready; see {part.log}"
                    )
                try:
                    ok = client.get(part.url).status_code == 200
                except httpx.HTTPError:
                    ok = False
                now = time.monotonic()
                if ok:
                    part.ready_seconds = now - part.started_at
                    say(f"{part.name} ready in {part.ready_seconds:.1f}s")
                    pending.remove(part)
                elif now - part.started_at > part.timeout:
                    raise StackError(
                        f"{part.name} did not answer GET {part.url} within "
                        f"{part.timeout:.0f}s; see {part.log}"
                    )
            now = time.monotonic()
            if pending and now >= next_report:
                waiting = "; ".join(f"{p.name} ({p.doing}; GET {p.url})" for p in pending)
                say(f"{now - started:.0f}s: still waiting for {waiting}")
                next_report = now + PROGRESS_EVERY
            time.sleep(0.2)


def gateway_env(
    root: Path, ports: StackPorts, litellm_key: str, data: Path | None = None
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME")}
    env.update(
        {
            "ENVIRONMENT": "development",
            "DATA_DIR": str(data or root / "data"),
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
    """What the runner needs of a started service (ServiceProcess, devstack.mlflow's server,
    devstack.postgres's server)."""

    @property
    def proc(self) -> subprocess.Popen[bytes]: ...

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
            gateway, started = self.gateway, time.monotonic()
            wait_with_progress(
                lambda: gateway.poll() is not None or time.monotonic() - started > 40,
                "draining the gateway (requests in flight finish first, 30 s at most)",
                started,
            )
            if gateway.poll() is None:  # past gunicorn's 30 s graceful timeout and a margin
                os.killpg(gateway.pid, signal.SIGKILL)
                gateway.wait(timeout=5)
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


@dataclass(frozen=True)
class MlflowStore:
    """MLflow's backend store: sqlite in DATA_DIR/mlflow (the default, nothing to install) or a
    local PostgreSQL (Debian's package) in DATA_DIR/postgres on `postgres_port`."""

    backend: str = "sqlite"
    postgres_port: int = 5432
    workers: int | None = None  # None: 1 on sqlite (one writer), 2 on postgres

    @property
    def server_workers(self) -> int:
        return self.workers or (2 if self.backend == "postgres" else 1)


def start_postgres(store: MlflowStore, data: Path, logs: Path) -> tuple[PostgresServer, str]:
    """The local PostgreSQL for MLflow, started and holding an `mlflow` database: (server, URL)."""
    if not port_is_free(store.postgres_port):
        suggestion = free_port_after(store.postgres_port, set())
        raise StackError(
            f"port {store.postgres_port} (for PostgreSQL) is already in use. Move it with "
            f"`make run MLFLOW_BACKEND=postgres POSTGRES_PORT={suggestion}`"
        )
    try:
        server = PostgresServer(
            find_postgres_bin(), data / "postgres", store.postgres_port, logs / "postgres.log"
        )
        say(f"starting PostgreSQL on {LOOPBACK}:{store.postgres_port} (data: {data / 'postgres'})")
        server.start()
    except PostgresUnavailable as exc:
        raise StackError(f"{exc}; `make run` without MLFLOW_BACKEND uses sqlite") from exc
    return server, server.create_database("mlflow")


def run(root: Path, ports: StackPorts | None = None, store: MlflowStore | None = None) -> int:
    ports = ports or StackPorts()
    store = store or MlflowStore()
    config = root / SHIPPED_LITELLM_CONFIG
    if not config.is_file():
        raise StackError(f"missing the shipped LiteLLM config {config}")
    gateway_bin = root / ".venv" / "bin" / "llm-gateway"
    if not gateway_bin.is_file():
        raise StackError("no .venv/bin/llm-gateway: run `make install` (make run does it)")
    check_ports(ports)
    litellm_venv, mlflow_venv = build_venvs(root)
    data = data_dir(root)
    logs = data / "logs"
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

        store_uri = None
        if store.backend == "postgres":
            postgres, store_uri = start_postgres(store, data, logs)
            stack.children.append(("PostgreSQL", postgres))
        where = "PostgreSQL" if store_uri else data / "mlflow"
        say(
            f"starting the MLflow server on {LOOPBACK}:{ports.mlflow} (store: {where}, "
            f"{store.server_workers} workers)"
        )
        mlflow = start_mlflow_server(
            mlflow_venv,
            ports.mlflow,
            data / "mlflow",
            logs / "mlflow.log",
            backend_store_uri=store_uri,
            workers=store.server_workers,
        )
        stack.children.append(("the MLflow server", mlflow))
        say(f"starting the LiteLLM proxy on {LOOPBACK}:{ports.litellm} (shipped mock models)")
        proxy = spawn_litellm_proxy(
            litellm_venv,
            config,
            ports.litellm,
            logs / "litellm.log",
            {"LITELLM_MASTER_KEY": litellm_key},
        )
        stack.children.append(("the LiteLLM proxy", proxy))
        wait_until_ready(
            [
                Awaited(
                    "the LiteLLM proxy",
                    proxy.url + READY_PATH,
                    proxy.proc,
                    LITELLM_READY_TIMEOUT,
                    "importing LiteLLM: ~7 s of CPU, longer on a busy machine",
                    str(proxy.log_path),
                    started_at=proxy.started_at,
                ),
                Awaited(
                    "the MLflow server",
                    mlflow.url + "/health",
                    mlflow.proc,
                    MLFLOW_READY_TIMEOUT,
                    "its first start creates and migrates its store",
                    str(mlflow.log_path),
                    started_at=mlflow.started_at,
                ),
            ],
            stop_requested,
        )
        if stop_requested:
            return 0
        say(f"starting the gateway on http://localhost:{ports.gateway}")
        stack.gateway = subprocess.Popen(  # noqa: S603 - fixed argv
            [str(gateway_bin), "serve"],
            env=gateway_env(root, ports, litellm_key, data),
            cwd=root,
            start_new_session=True,  # Ctrl-C reaches the runner, which drains the gateway itself
        )
        wait_until_ready(
            [
                Awaited(
                    "the gateway",
                    f"http://{LOOPBACK}:{ports.gateway}/livez",
                    stack.gateway,
                    GATEWAY_READY_TIMEOUT,
                    "gunicorn booting its workers",
                    "its log lines above",
                )
            ],
            stop_requested,
        )
        if stop_requested:
            return 0
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
