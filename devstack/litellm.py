"""The LiteLLM proxy for the local stack and the integration tests: its venv and its process.

The proxy runs from `.stack/litellm-venv` (pinned by devstack/requirements/litellm.txt), never
from the service's `.venv`. It always starts with `LITELLM_LOCAL_MODEL_COST_MAP=True` (no cost map
download from the internet at import) and telemetry off.

CLI (used by `make litellm-venv`)::

    python -m devstack.litellm ensure
    python -m devstack.litellm serve --config FILE --port 4000
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

REQUIREMENTS = Path("devstack/requirements/litellm.txt")
VENV_NAME = "litellm-venv"
READY_PATH = "/health/liveliness"  # served without auth, no upstream calls

# Quiet, offline, reproducible: no cost-map fetch, no telemetry, no feedback banners.
PROXY_ENV = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_TELEMETRY": "False",
    "LITELLM_DONT_SHOW_FEEDBACK_BOX": "true",
    "DISABLE_ADMIN_UI": "True",
    "LITELLM_LOG": "ERROR",
    "PYTHONUNBUFFERED": "1",
}


def ensure_litellm_venv(root: Path) -> Path:
    """`root/.stack/litellm-venv`, installed on first use and when the pins change.

    Idempotent and safe to call concurrently; raises `subprocess.CalledProcessError` when the
    install fails (e.g. the package index is unreachable).
    """
    return ensure_venv(root, VENV_NAME, root / REQUIREMENTS, entry_point="litellm")


def proxy_argv(venv: Path, config_path: Path, port: int, host: str = "127.0.0.1") -> list[str]:
    return [
        str(venv / "bin" / "litellm"),
        "--config",
        str(config_path),
        "--host",
        host,
        "--port",
        str(port),
        "--num_workers",
        "1",
        "--telemetry",
        "False",
    ]


def spawn_litellm_proxy(
    venv: Path,
    config_path: Path,
    port: int,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    *,
    host: str = "127.0.0.1",
) -> ServiceProcess:
    """Start the proxy without waiting (callers overlap its 20-90 s boot with other work).

    `env` adds to (and overrides) the caller's environment, e.g. provider keys or
    LITELLM_MASTER_KEY. Wait with `process.wait_ready(READY_PATH, timeout)`.
    """
    full_env = clean_env()
    full_env.update(env or {})
    full_env.update(PROXY_ENV)
    return ServiceProcess(
        "litellm proxy",
        proxy_argv(venv, config_path, port, host),
        url=f"http://{host}:{port}",
        log_path=log_path,
        env=full_env,
        cwd=config_path.parent,
    )


def start_litellm_proxy(
    venv: Path,
    config_path: Path,
    port: int,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    *,
    host: str = "127.0.0.1",
    ready_timeout: float = 300.0,
) -> ServiceProcess:
    """Start the proxy and block until GET /health/liveliness answers 200.

    Raises RuntimeError (the process is stopped first) when the proxy exits or is not ready
    within `ready_timeout`. The returned handle's `ready_seconds` is the measured time from
    spawn to ready.
    """
    process = spawn_litellm_proxy(venv, config_path, port, log_path, env, host=host)
    try:
        process.wait_ready(READY_PATH, timeout=ready_timeout)
    except BaseException:
        process.stop()
        raise
    return process


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.litellm")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("ensure", help="build .stack/litellm-venv if missing or outdated")
    serve = commands.add_parser("serve", help="run the proxy in the foreground")
    serve.add_argument("--config", type=Path, required=True)
    serve.add_argument("--port", type=int, default=4000)
    serve.add_argument("--log", type=Path, default=Path("data/logs/litellm.log"))
    args = parser.parse_args(argv)
    root = repo_root()
    started = time.monotonic()
    venv = ensure_litellm_venv(root)
    if args.command == "ensure":
        sys.stdout.write(f"{venv} ready in {time.monotonic() - started:.1f}s\n")
        return 0
    proxy = start_litellm_proxy(venv, args.config.resolve(), args.port, args.log)
    sys.stdout.write(f"litellm proxy ready at {proxy.url} in {proxy.ready_seconds or 0:.1f}s\n")
    sys.stdout.flush()
    stop = False

    def _request_stop(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _request_stop)
    signal.signal(signal.SIGINT, _request_stop)
    try:
        while not stop and proxy.running():
            time.sleep(0.2)
    finally:
        proxy.stop()
    return 0 if stop else 1


if __name__ == "__main__":
    raise SystemExit(main())
