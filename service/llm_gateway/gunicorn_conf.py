"""gunicorn configuration, used as `gunicorn -c python:llm_gateway.gunicorn_conf APP`.

`llm-gateway serve` execs exactly that, so gunicorn is PID 1 in a container. Every number comes
from the same Settings the app uses; an invalid environment stops the master here with the same
one-line-per-problem message as `llm-gateway check-config`.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

# prometheus_client picks its value storage when first imported, and the preflight below imports
# it (through the rate limiter's metrics): the directory must be in the environment before any
# llm_gateway import, or every forked worker would count in private memory.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="llm-gateway-metrics-")
_metrics_dir = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])

from llm_gateway.errors import ConfigurationError  # noqa: E402
from llm_gateway.observability.logging import configure_logging, logging_config  # noqa: E402
from llm_gateway.preflight import check_runtime_configuration  # noqa: E402
from llm_gateway.ratelimit.stores import SHARED_FILE_NAME  # noqa: E402
from llm_gateway.settings import load_settings, signing_key  # noqa: E402

try:
    _settings = load_settings()
    check_runtime_configuration(_settings)
except ConfigurationError as _error:
    for _line in _error.lines():
        sys.stderr.write(_line + "\n")
    sys.exit(2)

# The master's own lines are JSON from here on (gunicorn applies the same config again).
configure_logging(_settings.service_name, _settings.log_level)

# Only reachable in development mode (production fails validation above). The master makes one
# key and the workers inherit it through the environment: each worker inventing its own would
# reject the tokens its siblings issued.
if _settings.jwt_secret_key is None:
    os.environ["JWT_SECRET_KEY"] = signing_key(_settings)
    _settings = load_settings()

# The default rate-limit store is one SQLite file shared by this master's workers. The master
# makes its directory (never opens the file: SQLite handles must not cross a fork) and hands the
# path to the workers through the environment, as the development key above; on_exit removes it.
_ratelimit_dir: Path | None = None
if _settings.rate_limit_enabled and _settings.rate_limit_storage_uri == "sqlite://":
    _ratelimit_dir = Path(tempfile.mkdtemp(prefix="llm-gateway-ratelimit-"))
    os.environ["RATE_LIMIT_STORAGE_URI"] = f"sqlite://{_ratelimit_dir / SHARED_FILE_NAME}"
    _settings = load_settings()


bind = [f"{_settings.host}:{_settings.port}"]
workers = _settings.web_concurrency
worker_class = "llm_gateway.server.GatewayUvicornWorker"
graceful_timeout = math.ceil(_settings.gunicorn_graceful_timeout)
timeout = math.ceil(_settings.gunicorn_timeout)
keepalive = math.ceil(_settings.keepalive_seconds)
proc_name = _settings.service_name
# gunicorn's control socket would be written under $HOME, which is read-only in the container,
# and nothing here uses it.
control_socket_disable = True
# Readiness is the app's to decide; gunicorn need not hide a crash loop behind restarts.
preload_app = False
accesslog = None
errorlog = "-"
loglevel = _settings.log_level.lower()
logconfig_dict = logging_config(_settings.service_name, _settings.log_level)
# Containers run with a read-only root filesystem: heartbeat files go to memory-backed /dev/shm
# when present, /tmp otherwise.
_SHM = "/dev/shm"  # noqa: S108 - a fixed system path, not a predictable temp file
worker_tmp_dir = _SHM if os.path.isdir(_SHM) and os.access(_SHM, os.W_OK) else None

_log = logging.getLogger("llm_gateway.server")


def on_starting(server: Any) -> None:
    configure_logging(_settings.service_name, _settings.log_level)
    # Samples from a previous run would be merged into this one's.
    for stale in _metrics_dir.glob("*.db"):
        stale.unlink()
    _log.info("configuration_loaded", extra={"settings": _settings.redacted_summary()})
    _log.info(
        "gunicorn_starting",
        extra={
            "bind": bind,
            "workers": workers,
            "graceful_timeout": graceful_timeout,
            "uvicorn_graceful_timeout": _settings.uvicorn_graceful_timeout,
        },
    )


def post_fork(server: Any, worker: Any) -> None:
    # The forked child inherits the master's handlers; re-apply so the pid and hooks are fresh.
    configure_logging(_settings.service_name, _settings.log_level)


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def worker_abort(worker: Any) -> None:
    _log.error("worker_aborted", extra={"worker_pid": worker.pid})


def on_exit(server: Any) -> None:
    _log.info("gunicorn_stopped")
    if _metrics_dir.name.startswith("llm-gateway-metrics-"):
        shutil.rmtree(_metrics_dir, ignore_errors=True)
    if _ratelimit_dir is not None:
        shutil.rmtree(_ratelimit_dir, ignore_errors=True)
