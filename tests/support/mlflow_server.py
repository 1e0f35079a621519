"""A real MLflow tracking server for integration tests (its own venv, a free port, a tmp store)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from devstack.mlflow import MlflowServer, ensure_mlflow_venv, start_mlflow_server

REPO = Path(__file__).resolve().parents[2]
# `mlflow server` imports mlflow twice (CLI, then its uvicorn child): ~20 s of CPU each, far more
# on a busy 2-core runner.
START_TIMEOUT = 180.0


def mlflow_venv() -> Path:
    """The server venv, built on first use (a one-time cost; later calls only hash a file)."""
    return ensure_mlflow_venv(REPO)


def start_ready_server(
    venv: Path,
    port: int,
    store: Path,
    log_path: Path,
    *,
    backend_store_uri: str | None = None,
    workers: int = 1,
) -> MlflowServer:
    server = start_mlflow_server(
        venv, port, store, log_path, backend_store_uri=backend_store_uri, workers=workers
    )
    try:
        server.wait_ready(timeout=START_TIMEOUT)
    except Exception:
        server.stop()
        raise
    return server


def experiment_id(url: str, name: str) -> str:
    response = httpx.get(
        f"{url}/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": name}
    )
    response.raise_for_status()
    return str(response.json()["experiment"]["experiment_id"])


def all_traces(url: str, experiment_name: str) -> list[Any]:
    """Every trace of the experiment, spans included, read back through mlflow-tracing's client."""
    from mlflow.tracing.client import TracingClient

    client = TracingClient(url)
    return list(
        client.search_traces(locations=[experiment_id(url, experiment_name)], max_results=500)
    )
