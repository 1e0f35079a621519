"""The local MLflow tracking server: its own virtualenv and its process.

The server lives in `.stack/mlflow-venv`, built from the pinned `devstack/requirements/mlflow.txt`
(never the service's .venv: the service only carries the light `mlflow-tracing` client, and the
full `mlflow` must never share a venv with litellm, whose import deadlocks `mlflow server`).
The venv is rebuilt only when the requirements file changes (keyed by its sha256).

CLI (used by `make mlflow-venv` and `make run`)::

    python -m devstack.mlflow ensure
    python -m devstack.mlflow serve --port 5000 --store data/mlflow [--host 127.0.0.1]
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from devstack.processes import ServiceProcess
from devstack.venvs import clean_env, ensure_venv, repo_root

REQUIREMENTS = Path("devstack/requirements/mlflow.txt")
VENV_NAME = "mlflow-venv"
# Host headers the server accepts (MLflow >= 3.5 rejects others with 403): loopback for tests and
# `make run`, the in-cluster Service names for the chart's workload.
DEFAULT_ALLOWED_HOSTS = ",".join(
    (
        "localhost",
        "localhost:*",
        "127.0.0.1",
        "127.0.0.1:*",
        "mlflow",
        "mlflow:*",
        "*.svc",
        "*.svc:*",
        "*.svc.cluster.local",
        "*.svc.cluster.local:*",
    )
)


def ensure_mlflow_venv(root: Path) -> Path:
    """The MLflow server venv under `root/.stack/`, built or rebuilt when its pins changed.

    Idempotent and safe to call concurrently. Returns the venv directory; raises
    `subprocess.CalledProcessError` when the install fails.
    """
    return ensure_venv(root, VENV_NAME, root / REQUIREMENTS, entry_point="mlflow")


class MlflowServer(ServiceProcess):
    """A running `mlflow server` child; its own session so stop() also reaps its workers."""

    def __init__(self, argv: Sequence[str], *, url: str, log_path: Path, env: Mapping[str, str]):
        super().__init__("mlflow server", argv, url=url, log_path=log_path, env=env)

    def wait_ready(self, path: str = "/health", timeout: float = 180.0) -> float:
        """Block until GET /health answers 200; raise RuntimeError if it exits or times out."""
        return super().wait_ready(path, timeout)


def mlflow_server_argv(
    venv: Path,
    port: int,
    store_dir: Path,
    host: str = "127.0.0.1",
    *,
    backend_store_uri: str | None = None,
    workers: int = 1,
) -> list[str]:
    """`backend_store_uri` None: sqlite in store_dir (one writer: keep workers at 1 with it)."""
    store_dir = store_dir.resolve()
    return [
        str(venv / "bin" / "mlflow"),
        "server",
        "--backend-store-uri",
        backend_store_uri or f"sqlite:///{store_dir / 'mlflow.db'}",
        "--artifacts-destination",
        str(store_dir / "artifacts"),
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]


def start_mlflow_server(
    venv: Path,
    port: int,
    store_dir: Path,
    log_path: Path,
    *,
    host: str = "127.0.0.1",
    allowed_hosts: str = DEFAULT_ALLOWED_HOSTS,
    backend_store_uri: str | None = None,
    workers: int = 1,
) -> MlflowServer:
    """Start `mlflow server` (sqlite store unless `backend_store_uri`, local artifacts in
    store_dir); not yet ready."""
    store_dir.mkdir(parents=True, exist_ok=True)
    env = clean_env()
    # An operator's own list (the environment) wins over the default.
    env.setdefault("MLFLOW_SERVER_ALLOWED_HOSTS", allowed_hosts)
    # No telemetry pings from a dev/test server (the network here is closed anyway).
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    env["DO_NOT_TRACK"] = "true"
    # The GenAI job runner (scorers, optimizers) is unused here and slows startup.
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    return MlflowServer(
        mlflow_server_argv(
            venv, port, store_dir, host, backend_store_uri=backend_store_uri, workers=workers
        ),
        url=f"http://{host}:{port}",
        log_path=log_path,
        env=env,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.mlflow")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("ensure", help="build .stack/mlflow-venv if missing or outdated")
    serve = commands.add_parser("serve", help="run mlflow server in the foreground")
    serve.add_argument("--port", type=int, default=5000)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--store", type=Path, default=Path("data/mlflow"))
    serve.add_argument(
        "--log", type=Path, default=None, help="log file (default: <store>/server.log)"
    )
    args = parser.parse_args(argv)
    root = repo_root()
    started = time.monotonic()
    venv = ensure_mlflow_venv(root)
    if args.command == "ensure":
        sys.stdout.write(f"{venv} ready in {time.monotonic() - started:.1f}s\n")
        return 0
    server = start_mlflow_server(
        venv, args.port, args.store, args.log or args.store / "server.log", host=args.host
    )
    stop_requested = False

    def _request_stop(signum: int, frame: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGTERM, _request_stop)
    signal.signal(signal.SIGINT, _request_stop)
    try:
        server.wait_ready(timeout=300)
        sys.stdout.write(f"mlflow server ready at {server.url} (log: {server.log_path})\n")
        sys.stdout.flush()
        while not stop_requested and server.proc.poll() is None:
            time.sleep(0.2)
    finally:
        server.stop()
    return 0 if stop_requested else 1


if __name__ == "__main__":
    raise SystemExit(main())
