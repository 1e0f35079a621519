"""Traces through a real MLflow on a real Postgres (`mlflow server --workers 2`), with MLflow
answering 500s, hanging past the timeout and returning garbage in between: nothing lost, every
failure counted, one log line per change of state (not one per trace).

Postgres is Debian's, started by the test on a free loopback port in a tmp directory and stopped
at the end; a FaultyFront proxy (tests/support) stands between the tracker and MLflow.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from devstack.mlflow import MlflowServer
from devstack.postgres import PostgresServer

from llm_gateway.observability.metrics import Metrics
from llm_gateway.tracking.journal import TraceJournal
from llm_gateway.tracking.mlflow_export import MlflowExporter
from llm_gateway.tracking.tracker import TraceTracker
from tests.support.faulty_front import FaultyFront
from tests.support.logs import capture_json_logs
from tests.support.mlflow_server import all_traces, mlflow_venv, start_ready_server
from tests.support.postgres_server import postgres_server
from tests.support.processes import free_port
from tests.unit.tracking.fakes import eventually, make_record, traces_count

pytestmark = pytest.mark.integration

EXPERIMENT = "gateway-postgres"
PER_PHASE = 30  # traces sent in each phase: far more than the log lines a phase may add


async def sleep_forever(_: float) -> None:
    await asyncio.Event().wait()


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[PostgresServer]:
    with postgres_server(tmp_path) as server:
        server.start()
        yield server


@pytest.fixture
def mlflow_on_postgres(postgres: PostgresServer, tmp_path: Path) -> Iterator[MlflowServer]:
    uri = postgres.create_database("mlflow")
    server = start_ready_server(
        mlflow_venv(),
        free_port(),
        tmp_path / "mlflow",
        tmp_path / "mlflow.log",
        backend_store_uri=uri,
        workers=2,
    )
    yield server
    server.stop()


def failures(metrics: Metrics, kind: str) -> float:
    value = metrics.registry.get_sample_value("trace_export_failures_total", {"kind": kind})
    return value or 0.0


@pytest.mark.timeout(480)
async def test_nothing_is_lost_through_500s_hangs_and_garbage_and_each_state_logs_once(
    mlflow_on_postgres: MlflowServer, tmp_path: Path
) -> None:
    metrics = Metrics()
    with FaultyFront(mlflow_on_postgres.url, hang_seconds=8) as front:
        # Well above a real upload's time on a busy runner: only the hang phase may time out.
        exporter = MlflowExporter(front.url, EXPERIMENT, timeout=5)
        journal = TraceJournal(tmp_path / "journal", 1_000_000, 5, metrics)
        tracker = TraceTracker(
            exporter,
            journal,
            metrics,
            queue_size=1000,
            replay_interval=15,
            batch_size=10,
            concurrency=4,
            sleep=sleep_forever,
        )
        await tracker.start()
        sent = []
        with capture_json_logs() as logs:
            for phase, mode in enumerate(["pass", "500", "hang", "garbage"]):
                front.mode = mode
                records = [make_record(1000 * phase + n) for n in range(PER_PHASE)]
                sent += records
                for rec in records:
                    tracker.record(rec)
                # Each live record is exported or journaled exactly once.
                expected = len(sent)
                await eventually(
                    lambda expected=expected: (
                        traces_count(metrics, "exported") + traces_count(metrics, "journaled")
                        >= expected
                    ),
                    timeout=60,
                )
                front.mode = "pass"
                # Back to normal: a replay probes MLflow, recovers, and sends the journal.
                await tracker.replay_once()
            await tracker.close(timeout=5)

        states = [
            (e["message"], e.get("failure"))
            for e in logs.records
            if e["message"] in ("trace_export_failed", "trace_export_recovered")
        ]
    assert states == [
        ("trace_export_failed", "http_error"),
        ("trace_export_recovered", None),
        ("trace_export_failed", "timeout"),
        ("trace_export_recovered", None),
        ("trace_export_failed", "garbage"),
        ("trace_export_recovered", None),
    ]
    assert failures(metrics, "http_error") >= 1
    assert failures(metrics, "timeout") >= 1
    assert failures(metrics, "garbage") >= 1
    assert traces_count(metrics, "dropped") == 0

    traces = await asyncio.to_thread(all_traces, mlflow_on_postgres.url, EXPERIMENT)
    by_request = {t.info.tags["request_id"]: t for t in traces}
    assert len(traces) == len(sent) == 4 * PER_PHASE  # every one, once
    assert sorted(by_request) == sorted(r.request_id for r in sent)
    for rec in sent:
        trace = by_request[rec.request_id]
        assert trace.info.trace_id == rec.trace_id
        assert trace.data.spans[0].inputs == rec.inputs
