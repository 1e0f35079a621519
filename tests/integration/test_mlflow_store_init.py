"""The chart's MLflow store-init script (chart/llm-gateway/charts/mlflow/files/init_store.py),
run as its init container runs it: MLflow's own Python (the server venv), a real PostgreSQL
(Debian's, started by the test on a free loopback port).

Replicas of MLflow that start together on an empty database race to create its schema, and the
loser crashes (measured with two `mlflow server`s here and on the real node: every time). The
script makes them wait for the database, then take turns under a PostgreSQL advisory lock.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from devstack.postgres import PostgresServer

from tests.support.mlflow_server import mlflow_venv
from tests.support.postgres_server import postgres_server
from tests.support.processes import free_port

pytestmark = pytest.mark.integration

SCRIPT = (
    Path(__file__).resolve().parents[2]
    / "chart"
    / "llm-gateway"
    / "charts"
    / "mlflow"
    / "files"
    / "init_store.py"
)
REPLICAS = 3


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[PostgresServer]:
    """A PostgreSQL server not started yet: the test starts it when it wants to."""
    with postgres_server(tmp_path) as server:
        yield server


def store_init(uri: str, wait_seconds: float) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "MLFLOW_BACKEND_STORE_URI": uri,
        "MLFLOW_STORE_WAIT_SECONDS": str(wait_seconds),
    }
    for foreign in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"):
        env.pop(foreign, None)
    return subprocess.Popen(
        [str(mlflow_venv() / "bin" / "python"), str(SCRIPT)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.timeout(300)
def test_replicas_started_before_the_database_wait_then_make_the_schema_once(
    postgres: PostgresServer,
) -> None:
    uri = f"postgresql+psycopg://mlflow@127.0.0.1:{postgres.port}/mlflow"
    replicas = [store_init(uri, wait_seconds=180) for _ in range(REPLICAS)]
    time.sleep(2)  # nothing listens yet: each of them is waiting
    assert all(replica.poll() is None for replica in replicas)
    postgres.start()
    postgres.create_database("mlflow")
    logs = []
    for replica in replicas:
        output, _ = replica.communicate(timeout=240)
        logs.append(output)
        assert replica.returncode == 0, output
    joined = "\n".join(logs)
    for log in logs:
        # Waiting says why once per reason (refused, then the database missing...), not once
        # per retry.
        assert "Connection refused" in log, log
        waits = [line for line in log.splitlines() if line.startswith("store-init: waiting")]
        assert len(waits) == len(set(waits)), waits
        assert "holding the schema lock" in log, log
    assert joined.count("store-init: schema created in") == 1, joined
    assert joined.count("store-init: schema checked in") == REPLICAS - 1, joined
    # MLflow's own tables and migrations, at MLflow's head revision: a server starting after it
    # has nothing left to create.
    assert postgres_query(postgres, "SELECT count(*) FROM alembic_version") == "1"
    assert postgres_query(postgres, "SELECT to_regclass('public.experiments') IS NOT NULL") == "t"


def postgres_query(postgres: PostgresServer, sql: str) -> str:
    result = subprocess.run(
        [
            str(postgres.bin_dir / "psql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(postgres.port),
            "-U",
            "mlflow",
            "-d",
            "mlflow",
            "-tAc",
            sql,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def test_a_database_that_never_answers_ends_it_with_the_reason_and_no_password() -> None:
    port = free_port()  # nothing listens there
    replica = store_init(
        f"postgresql+psycopg://mlflow:s3cret-pw@127.0.0.1:{port}/mlflow", wait_seconds=3
    )
    started = time.monotonic()
    output, _ = replica.communicate(timeout=60)
    assert replica.returncode == 1, output
    assert time.monotonic() - started >= 3
    assert "did not accept MLflow's login within 3s: " in output
    assert "Connection refused" in output
    # The URL is shown for the operator, its password never.
    assert "s3cret-pw" not in output
    assert f"postgresql+psycopg://mlflow:***@127.0.0.1:{port}/mlflow" in output
