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
import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

REQUIREMENTS = Path("devstack/requirements/mlflow.txt")
VENV_DIR = Path(".stack/mlflow-venv")
STAMP_NAME = ".requirements-sha256"
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


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def _find_uv(root: Path) -> str | None:
    local = root / ".tools" / "uv" / "bin" / "uv"
    if local.is_file():
        return str(local)
    return shutil.which("uv")


def _requirements_hash(requirements: Path) -> str:
    return hashlib.sha256(requirements.read_bytes()).hexdigest()


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Serialise venv builds across processes (parallel test sessions, `make run`)."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(argv: Sequence[str], env: Mapping[str, str] | None = None) -> None:
    subprocess.run(list(argv), check=True, env=dict(env) if env is not None else None)  # noqa: S603


def ensure_mlflow_venv(root: Path) -> Path:
    """The MLflow server venv under `root/.stack/`, built or rebuilt when its pins changed.

    Idempotent and safe to call concurrently. Returns the venv directory; raises
    `subprocess.CalledProcessError` when the install fails.
    """
    requirements = root / REQUIREMENTS
    venv = root / VENV_DIR
    wanted = _requirements_hash(requirements)
    stamp = venv / STAMP_NAME
    with _exclusive(root / ".stack" / "mlflow-venv.lock"):
        if (
            stamp.is_file()
            and stamp.read_text().strip() == wanted
            and (venv / "bin" / "mlflow").is_file()
        ):
            return venv
        # Outside env markers must not redirect the installer to another environment.
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
        env.pop("UV_PROJECT_ENVIRONMENT", None)
        uv = _find_uv(root)
        if venv.exists():
            shutil.rmtree(venv)
        if uv is not None:
            _run([uv, "venv", "--quiet", "--python", "3.11", str(venv)], env)
            _run(
                [uv, "pip", "sync", "--quiet", "--compile-bytecode",
                 "--python", str(venv / "bin" / "python"),
                 str(requirements)],
                env,
            )  # fmt: skip
        else:
            _run([sys.executable, "-m", "venv", str(venv)], env)
            _run(
                [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check",
                 "-r", str(requirements)],
                env,
            )  # fmt: skip
        stamp.write_text(wanted + "\n")
        return venv


class MlflowServer:
    """A running `mlflow server` child; its own session so stop() also reaps its workers."""

    def __init__(self, argv: Sequence[str], *, url: str, log_path: Path, env: Mapping[str, str]):
        self.argv = list(argv)
        self.url = url
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(  # noqa: S603
            self.argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=dict(env),
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 180.0) -> None:
        """Block until GET /health answers 200; raise RuntimeError if it exits or times out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"mlflow server exited with {self.proc.returncode}; see {self.log_path}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:  # noqa: S310
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"mlflow server not ready within {timeout}s; see {self.log_path}")

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=timeout)
        # The server's uvicorn/gunicorn workers share its process group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc.returncode is None:
            self.proc.wait(timeout=5)
        self._log.close()
        return self.proc.returncode


def mlflow_server_argv(
    venv: Path, port: int, store_dir: Path, host: str = "127.0.0.1"
) -> list[str]:
    store_dir = store_dir.resolve()
    return [
        str(venv / "bin" / "mlflow"),
        "server",
        "--backend-store-uri",
        f"sqlite:///{store_dir / 'mlflow.db'}",
        "--artifacts-destination",
        str(store_dir / "artifacts"),
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "1",
    ]


def start_mlflow_server(
    venv: Path,
    port: int,
    store_dir: Path,
    log_path: Path,
    *,
    host: str = "127.0.0.1",
    allowed_hosts: str = DEFAULT_ALLOWED_HOSTS,
) -> MlflowServer:
    """Start `mlflow server` (sqlite store and local artifacts in store_dir); not yet ready."""
    store_dir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    # An operator's own list (the environment) wins over the default.
    env.setdefault("MLFLOW_SERVER_ALLOWED_HOSTS", allowed_hosts)
    # No telemetry pings from a dev/test server (the network here is closed anyway).
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    env["DO_NOT_TRACK"] = "true"
    # The GenAI job runner (scorers, optimizers) is unused here and slows startup.
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    return MlflowServer(
        mlflow_server_argv(venv, port, store_dir, host),
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
