"""Traces reach a real MLflow server, survive its outage in the journal, and are replayed once.

One MLflow server (its own venv, a free port, a tmp sqlite store) is started, stopped and started
again on the same store and port; the gateway side is the real tracker, journal and exporter.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from devstack.mlflow import MlflowServer

from llm_gateway.observability.metrics import Metrics
from llm_gateway.tracking.journal import TraceJournal
from llm_gateway.tracking.mlflow_export import MlflowExporter
from llm_gateway.tracking.records import TraceRecord
from llm_gateway.tracking.tracker import TraceTracker
from tests.support.logs import capture_json_logs
from tests.support.mlflow_server import all_traces, mlflow_venv, start_ready_server
from tests.support.processes import free_port
from tests.unit.tracking.fakes import eventually, make_record, traces_count

pytestmark = pytest.mark.integration

EXPERIMENT = "gateway-integration"


async def sleep_forever(_: float) -> None:
    await asyncio.Event().wait()


@pytest.fixture(scope="module")
def venv() -> Path:
    return mlflow_venv()


@pytest.fixture
def mlflow_store(tmp_path: Path) -> Path:
    return tmp_path / "mlflow"


@pytest.fixture
def server_slot(
    venv: Path, mlflow_store: Path, tmp_path: Path
) -> Iterator[dict[str, MlflowServer]]:
    """Holds the running server (replaced on restart); whatever runs at the end is stopped."""
    slot: dict[str, MlflowServer] = {}
    yield slot
    if "server" in slot:
        slot["server"].stop()


@pytest.fixture
async def tracker_for(
    tmp_path: Path,
) -> AsyncIterator[dict[str, TraceTracker]]:
    made: dict[str, TraceTracker] = {}
    yield made
    for tracker in made.values():
        await tracker.close(timeout=1)


def build_tracker(url: str, journal_dir: Path, metrics: Metrics) -> TraceTracker:
    exporter = MlflowExporter(url, EXPERIMENT, timeout=5)
    journal = TraceJournal(journal_dir, max_bytes=1_000_000, max_files=5, metrics=metrics)
    return TraceTracker(
        exporter, journal, metrics, queue_size=1000, replay_interval=15, sleep=sleep_forever
    )


def server_view(url: str) -> dict[str, object]:
    traces = all_traces(url, EXPERIMENT)
    return {
        "trace_ids": [t.info.trace_id for t in traces],
        "by_request": {t.info.tags["request_id"]: t for t in traces},
    }


def assert_trace_matches(trace: object, record: TraceRecord) -> None:
    info = trace.info  # type: ignore[attr-defined]
    (span,) = trace.data.spans  # type: ignore[attr-defined]
    assert info.trace_id == record.trace_id
    assert info.tags["request_id"] == record.request_id
    assert info.trace_metadata["mlflow.trace.user"] == "alice"
    assert span.inputs == record.inputs
    assert span.outputs == record.outputs
    assert span.start_time_ns == record.started_at_ns


# Two MLflow server starts dominate (about 60 s of CPU in all); the bound allows a busy runner.
@pytest.mark.timeout(480)
async def test_traces_survive_an_mlflow_outage_and_are_replayed_with_none_lost(
    venv: Path,
    mlflow_store: Path,
    tmp_path: Path,
    server_slot: dict[str, MlflowServer],
    tracker_for: dict[str, TraceTracker],
) -> None:
    port = free_port()
    started = time.monotonic()
    server_slot["server"] = await asyncio.to_thread(
        start_ready_server, venv, port, mlflow_store, tmp_path / "mlflow-1.log"
    )
    first_start = time.monotonic() - started
    url = server_slot["server"].url
    metrics = Metrics()
    tracker = tracker_for["t"] = build_tracker(url, tmp_path / "journal", metrics)
    await tracker.start()

    # 1. MLflow up: N traces are exported and visible with their tags, inputs and outputs.
    before = [make_record(n) for n in range(12)]
    export_started = time.monotonic()
    for rec in before:
        tracker.record(rec)
    await eventually(lambda: traces_count(metrics, "exported") == len(before), timeout=60)
    export_seconds = time.monotonic() - export_started
    view = await asyncio.to_thread(server_view, url)
    assert sorted(view["by_request"]) == sorted(r.request_id for r in before)  # type: ignore[arg-type]
    for rec in before:
        assert_trace_matches(view["by_request"][rec.request_id], rec)  # type: ignore[index]

    # 2. MLflow stopped: M more are journaled, none lost, one warning.
    server_slot.pop("server").stop()
    during = [make_record(100 + n) for n in range(9)]
    with capture_json_logs() as logs:
        for rec in during:
            tracker.record(rec)
        await eventually(lambda: traces_count(metrics, "journaled") == len(during), timeout=30)
    assert len(logs.events("trace_export_failed")) == 1
    assert await tracker.replay_once() == 0  # still down: the journal keeps everything

    # 3. Restarted on the same store and port: replay sends the journal; all N+M present once.
    started = time.monotonic()
    server_slot["server"] = await asyncio.to_thread(
        start_ready_server, venv, port, mlflow_store, tmp_path / "mlflow-2.log"
    )
    second_start = time.monotonic() - started
    assert await tracker.replay_once() == len(during)
    view = await asyncio.to_thread(server_view, url)
    expected = before + during
    assert sorted(view["trace_ids"]) == sorted(r.trace_id for r in expected)  # type: ignore[arg-type]
    for rec in during:
        assert_trace_matches(view["by_request"][rec.request_id], rec)  # type: ignore[index]
    assert traces_count(metrics, "replayed") == len(during)
    assert (await tracker.health())["journal_backlog"]["files"] == 0

    # 4. Sending records again (what a replay after a lost acknowledgement does) adds nothing.
    await asyncio.to_thread(tracker.exporter.export, before[:3] + during[:3])  # type: ignore[union-attr]
    view = await asyncio.to_thread(server_view, url)
    assert len(view["trace_ids"]) == len(expected)  # type: ignore[arg-type]

    print(
        f"\nmlflow first start {first_start:.1f}s, restart {second_start:.1f}s, "
        f"export of {len(before)} traces {export_seconds:.2f}s "
        f"({export_seconds / len(before) * 1000:.0f} ms/trace)"
    )


async def test_shutdown_with_mlflow_down_journals_every_queued_trace(tmp_path: Path) -> None:
    metrics = Metrics()
    closed_port = free_port()  # nothing listens: connection refused, as after a crash
    tracker = build_tracker(f"http://127.0.0.1:{closed_port}", tmp_path / "journal", metrics)
    records = [make_record(n) for n in range(25)]
    for rec in records:
        tracker.record(rec)  # not started: all still queued at shutdown

    with capture_json_logs() as logs:
        await tracker.close(timeout=2)

    reader = TraceJournal(tmp_path / "journal", 1_000_000, 5)
    journaled = [r for claim in reader.claim() for r in claim.records]
    reader.close()
    assert sorted(r.record_id for r in journaled) == sorted(r.record_id for r in records)
    (flushed,) = logs.events("traces_flushed")
    assert flushed["journaled"] == 25
    assert traces_count(metrics, "dropped") == 0
