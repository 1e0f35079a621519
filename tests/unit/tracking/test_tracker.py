"""TraceTracker: records reach MLflow or the journal, replay sends them once, close is bounded."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from llm_gateway.health import CheckFailed
from llm_gateway.observability.metrics import Metrics
from llm_gateway.tracking.journal import TraceJournal
from llm_gateway.tracking.records import TraceRecord
from llm_gateway.tracking.tracker import TraceTracker
from tests.support.logs import capture_json_logs
from tests.unit.tracking.fakes import FakeExporter, eventually, make_record, traces_count


async def sleep_forever(_: float) -> None:
    await asyncio.Event().wait()


def journaled_records(directory: Path) -> list[TraceRecord]:
    """What a fresh worker would replay from the directory (the tracker's journal is closed)."""
    reader = TraceJournal(directory, 10**6, 5)
    records = [r for claim in reader.claim() for r in claim.records]
    reader.close()
    return records


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def exporter() -> FakeExporter:
    return FakeExporter()


@pytest.fixture
def build(tmp_path: Path, metrics: Metrics) -> Callable[..., TraceTracker]:
    def _build(
        exporter: FakeExporter | None, queue_size: int = 100, **options: Any
    ) -> TraceTracker:
        journal = TraceJournal(tmp_path, max_bytes=10**6, max_files=5, metrics=metrics)
        return TraceTracker(
            exporter,
            journal,
            metrics,
            queue_size=queue_size,
            replay_interval=15,
            batch_size=4,
            sleep=sleep_forever,  # replay runs only when a test calls replay_once()
            **options,
        )

    return _build


@pytest.fixture
async def tracker(
    build: Callable[..., TraceTracker], exporter: FakeExporter
) -> AsyncIterator[TraceTracker]:
    tracker = build(exporter)
    await tracker.start()
    yield tracker
    if exporter.hang is not None:
        exporter.hang.set()
    await tracker.close(timeout=1)


async def test_recorded_traces_are_exported_in_batches(
    tracker: TraceTracker, exporter: FakeExporter, metrics: Metrics, tmp_path: Path
) -> None:
    records = [make_record(n) for n in range(10)]
    for rec in records:
        tracker.record(rec)

    # The exporter runs in a thread and fills `received` there; the tracker counts a batch once
    # that thread returns to the loop, so the count may trail `received` by one batch.
    await eventually(lambda: traces_count(metrics, "exported") == 10)
    # Batches run concurrently, so they may land in any order.
    assert sorted(r.record_id for r in exporter.received) == sorted(r.record_id for r in records)
    assert max(exporter.batches) <= 4
    assert traces_count(metrics, "journaled") == 0


async def test_a_failed_export_journals_the_batch_and_warns_once_per_outage(
    tracker: TraceTracker, exporter: FakeExporter, metrics: Metrics, tmp_path: Path
) -> None:
    exporter.failing = True
    with capture_json_logs() as logs:
        for n in range(3):
            tracker.record(make_record(n))
            await eventually(lambda n=n: traces_count(metrics, "journaled") == n + 1)

    (warning,) = logs.events("trace_export_failed")
    assert warning["level"] == "WARNING"
    assert warning["error_type"] == "DependencyUnavailable"
    assert exporter.received == []
    health = await tracker.health()
    assert health["mlflow_reachable"] is False
    assert health["journal_backlog"]["files"] == 1


async def test_a_full_queue_spills_to_the_journal_instead_of_dropping(
    build: Callable[..., TraceTracker], exporter: FakeExporter, metrics: Metrics, tmp_path: Path
) -> None:
    tracker = build(exporter, queue_size=2)  # not started: nothing drains the queue
    records = [make_record(n) for n in range(5)]
    for rec in records:
        tracker.record(rec)

    assert traces_count(metrics, "journaled") == 3
    await tracker.close(timeout=1)
    assert exporter.received == records[:2]
    assert journaled_records(tmp_path) == records[2:]
    assert traces_count(metrics, "dropped") == 0


async def test_replay_after_recovery_sends_everything_once_and_empties_the_journal(
    tracker: TraceTracker, exporter: FakeExporter, metrics: Metrics
) -> None:
    exporter.failing = True
    records = [make_record(n) for n in range(9)]
    for rec in records:
        tracker.record(rec)
    await eventually(lambda: traces_count(metrics, "journaled") == 9)

    assert await tracker.replay_once() == 0  # still down: nothing claimed
    exporter.failing = False
    with capture_json_logs() as logs:
        assert await tracker.replay_once() == 9
        assert await tracker.replay_once() == 0

    assert sorted(r.record_id for r in exporter.received) == sorted(r.record_id for r in records)
    assert traces_count(metrics, "replayed") == 9
    (event,) = logs.events("trace_journal_replayed")
    assert event["replayed"] == 9
    assert event["left_in_journal"] == 0
    assert logs.events("trace_export_recovered")
    assert (await tracker.health())["journal_backlog"] == {
        "files": 0,
        "bytes": 0,
        "oldest_age_seconds": 0.0,
    }
    # MLflow is marked up again: new records go straight out.
    tracker.record(make_record(100))
    await eventually(lambda: len(exporter.received) == 10)


async def test_an_outage_during_replay_keeps_the_unsent_records_for_the_next_round(
    tracker: TraceTracker, exporter: FakeExporter, metrics: Metrics
) -> None:
    exporter.failing = True
    records = [make_record(n) for n in range(10)]
    for rec in records:
        tracker.record(rec)
    await eventually(lambda: traces_count(metrics, "journaled") == 10)

    exporter.failing = False
    exporter.fail_after = 4  # accepts one batch of 4, then fails
    assert await tracker.replay_once() == 4
    exporter.fail_after = None
    assert await tracker.replay_once() == 6

    assert sorted(r.record_id for r in exporter.received) == sorted(r.record_id for r in records)


async def test_close_with_a_hanging_exporter_returns_within_its_timeout_and_journals_the_rest(
    tracker: TraceTracker, exporter: FakeExporter, tmp_path: Path
) -> None:
    exporter.hang = threading.Event()
    records = [make_record(n) for n in range(6)]
    for rec in records:
        tracker.record(rec)
    await asyncio.sleep(0.05)  # the first batch is now stuck in the exporter

    started = time.monotonic()
    with capture_json_logs() as logs:
        await tracker.close(timeout=0.3)
    elapsed = time.monotonic() - started
    exporter.hang.set()

    assert elapsed < 1.0
    assert {r.record_id for r in journaled_records(tmp_path)} == {r.record_id for r in records}
    (flushed,) = logs.events("traces_flushed")
    assert flushed["journaled"] == 6
    assert flushed["exported"] == 0
    assert exporter.closed


async def test_close_exports_what_is_queued_when_mlflow_answers(
    build: Callable[..., TraceTracker], exporter: FakeExporter, tmp_path: Path
) -> None:
    tracker = build(exporter)
    records = [make_record(n) for n in range(7)]
    for rec in records:
        tracker.record(rec)

    with capture_json_logs() as logs:
        await tracker.close(timeout=2)

    assert exporter.received == records
    assert logs.events("traces_flushed")[0]["exported"] == 7
    assert journaled_records(tmp_path) == []


async def test_without_mlflow_every_record_goes_to_the_journal(
    build: Callable[..., TraceTracker], metrics: Metrics, tmp_path: Path
) -> None:
    tracker = build(None)
    await tracker.start()
    records = [make_record(n) for n in range(3)]
    for rec in records:
        tracker.record(rec)
    await eventually(lambda: traces_count(metrics, "journaled") == 3)

    health = await tracker.health()
    details = await tracker.health_details()
    await tracker.close(timeout=1)

    assert health["mlflow_configured"] is False
    assert details["mlflow_reachable"] is None
    assert journaled_records(tmp_path) == records


async def test_the_health_check_fails_while_mlflow_is_unreachable(
    tracker: TraceTracker, exporter: FakeExporter
) -> None:
    assert (await tracker.health_details())["mlflow_reachable"] is True
    exporter.healthy = False
    with pytest.raises(CheckFailed) as failure:
        await tracker.health_details()
    assert failure.value.details["queue_depth"] == 0


async def test_the_replay_task_runs_every_replay_interval(
    tmp_path: Path, exporter: FakeExporter, metrics: Metrics
) -> None:
    slept: list[float] = []
    two_rounds = asyncio.Event()

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) > 2:
            two_rounds.set()
            await asyncio.Event().wait()

    journal = TraceJournal(tmp_path, 10**6, 5, metrics)
    journal.append([make_record(1), make_record(2)])  # left from an earlier outage
    tracker = TraceTracker(exporter, journal, metrics, 10, replay_interval=7.5, sleep=fake_sleep)
    await tracker.start()
    await asyncio.wait_for(two_rounds.wait(), timeout=3)
    await tracker.close(timeout=1)

    assert slept == [7.5, 7.5, 7.5]
    assert [r.request_id for r in exporter.received] == ["req-1", "req-2"]


async def test_a_replay_round_that_sent_records_goes_again_without_waiting_the_interval(
    tmp_path: Path, exporter: FakeExporter, metrics: Metrics
) -> None:
    intervals = 0

    async def first_interval_only(seconds: float) -> None:
        nonlocal intervals
        intervals += 1
        if intervals > 1:
            await asyncio.Event().wait()  # a second interval never ends in this test

    journal = TraceJournal(tmp_path, 10**6, 5, metrics)
    journal.append([make_record(1)])  # left from an outage
    exporter.hang = threading.Event()
    tracker = TraceTracker(
        exporter, journal, metrics, 10, replay_interval=15, sleep=first_interval_only
    )
    await tracker.start()
    await eventually(lambda: exporter.in_flight == 1)  # the first round is sending record 1
    journal.append([make_record(2)])  # journaled while that round runs
    exporter.hang.set()
    # The second interval never ends, so record 2 can only arrive in a round run without one.
    await eventually(lambda: len(exporter.received) == 2)
    # Then, with the journal empty, the loop waits an interval again (awaited, not read at once:
    # the empty round after record 2's may still be running).
    await eventually(lambda: intervals == 2)
    await tracker.close(timeout=1)

    assert [r.request_id for r in exporter.received] == ["req-1", "req-2"]
    assert intervals == 2


async def test_a_record_mlflow_refuses_is_dropped_loudly_without_blocking_its_batch(
    tracker: TraceTracker, exporter: FakeExporter, metrics: Metrics
) -> None:
    records = [make_record(n) for n in range(4)]
    exporter.reject_ids = {records[2].record_id}
    with capture_json_logs() as logs:
        for rec in records:
            tracker.record(rec)
        await eventually(lambda: traces_count(metrics, "dropped") == 1)
        await eventually(lambda: traces_count(metrics, "exported") == 3)

    assert exporter.received == [records[0], records[1], records[3]]
    (event,) = logs.events("trace_rejected")
    assert event["level"] == "ERROR"
    assert event["record_id"] == records[2].record_id
    assert logs.events("trace_export_failed") == []  # a refusal is not an outage
    assert traces_count(metrics, "journaled") == 0


async def test_a_refused_record_in_the_journal_does_not_block_the_replay(
    tracker: TraceTracker, exporter: FakeExporter, metrics: Metrics
) -> None:
    exporter.failing = True
    records = [make_record(n) for n in range(6)]
    for rec in records:
        tracker.record(rec)
    await eventually(lambda: traces_count(metrics, "journaled") == 6)
    exporter.failing = False
    exporter.reject_ids = {records[0].record_id}

    await tracker.replay_once()

    assert {r.record_id for r in exporter.received} == {r.record_id for r in records[1:]}
    assert traces_count(metrics, "dropped") == 1
    assert (await tracker.health())["journal_backlog"]["files"] == 0


async def test_a_failing_journal_disk_never_breaks_the_caller_and_counts_the_loss(
    tmp_path: Path, exporter: FakeExporter, metrics: Metrics
) -> None:
    not_a_directory = tmp_path / "journal"
    not_a_directory.write_text("a file where the journal directory should be")
    journal = TraceJournal(not_a_directory, 10**6, 5, metrics)
    tracker = TraceTracker(exporter, journal, metrics, queue_size=1, replay_interval=15)

    with capture_json_logs() as logs:
        tracker.record(make_record(1))  # queued
        tracker.record(make_record(2))  # queue full: the journal write fails

    (event,) = logs.events("trace_journal_write_failed")
    assert event["dropped"] == 1
    assert traces_count(metrics, "dropped") == 1
    exporter.failing = True
    with capture_json_logs() as logs:
        await tracker.close(timeout=1)
    assert logs.events("traces_flushed")[0]["journaled"] == 0
    assert traces_count(metrics, "dropped") == 2


async def test_records_arriving_within_the_linger_share_one_batch(
    tmp_path: Path, metrics: Metrics, exporter: FakeExporter
) -> None:
    journal = TraceJournal(tmp_path, max_bytes=10**6, max_files=5, metrics=metrics)
    tracker = TraceTracker(
        exporter, journal, metrics, 100, 15, batch_size=50, batch_linger=0.2, sleep=sleep_forever
    )
    await tracker.start()
    try:
        for n in range(6):
            tracker.record(make_record(n))
            await asyncio.sleep(0.005)  # one by one, as requests finish
        await eventually(lambda: len(exporter.received) == 6)
        assert exporter.batches == [6]
    finally:
        await tracker.close(timeout=1)


async def test_a_record_waiting_in_the_linger_is_journaled_by_close(
    tmp_path: Path, metrics: Metrics
) -> None:
    journal = TraceJournal(tmp_path, max_bytes=10**6, max_files=5, metrics=metrics)
    tracker = TraceTracker(None, journal, metrics, 100, 15, batch_linger=60, sleep=sleep_forever)
    await tracker.start()
    tracker.record(make_record(1))
    await asyncio.sleep(0.01)  # the export task has taken it and is lingering
    await tracker.close(timeout=1)
    assert [r.request_id for r in journaled_records(tmp_path)] == ["req-1"]


@pytest.mark.parametrize("concurrency", [1, 3])
async def test_live_uploads_run_concurrently_but_never_more_than_the_bound(
    build: Callable[..., TraceTracker],
    exporter: FakeExporter,
    metrics: Metrics,
    concurrency: int,
) -> None:
    exporter.delay = 0.05  # each upload takes a while, so batches pile up behind the bound
    tracker = build(exporter, queue_size=1000, concurrency=concurrency)
    await tracker.start()
    records = [make_record(n) for n in range(40)]
    for rec in records:
        tracker.record(rec)
    await eventually(lambda: traces_count(metrics, "exported") == 40, timeout=10)
    await tracker.close(timeout=1)

    assert exporter.max_in_flight == concurrency
    assert sorted(r.record_id for r in exporter.received) == sorted(r.record_id for r in records)
    assert traces_count(metrics, "journaled") == 0


async def test_replay_sends_windows_of_concurrent_batches_and_keeps_what_failed(
    build: Callable[..., TraceTracker], exporter: FakeExporter, metrics: Metrics, tmp_path: Path
) -> None:
    tracker = build(exporter, concurrency=3)
    journal = TraceJournal(tmp_path, 10**6, 5, metrics)
    records = [make_record(n) for n in range(30)]
    journal.append(records)  # left by an earlier outage (a dead worker's journal)
    journal.close()
    exporter.delay = 0.02
    exporter.fail_after = 20  # MLflow goes away after 5 batches of 4

    replayed = await tracker.replay_once()

    assert exporter.max_in_flight == 3
    # 20 records arrived; the unbroken run of sent batches from the start is 20 or fewer (a
    # window's later batch may land after an earlier one failed: it is sent again, harmlessly).
    assert replayed <= 20
    left = journaled_records(tmp_path)
    assert len(left) == 30 - replayed
    assert {r.record_id for r in records} <= {r.record_id for r in exporter.received + left}
    await tracker.close(timeout=1)


async def test_the_export_lag_and_the_backlog_are_published(
    tracker: TraceTracker, exporter: FakeExporter, metrics: Metrics
) -> None:
    tracker.record(make_record(1))
    await eventually(lambda: traces_count(metrics, "exported") == 1)
    lag_count = metrics.registry.get_sample_value("trace_export_lag_seconds_count")
    assert lag_count == 1
    # make_record's calls ended in 2023: the lag is measured from the call's end.
    lag_sum = metrics.registry.get_sample_value("trace_export_lag_seconds_sum")
    assert lag_sum is not None and lag_sum > 3600

    exporter.failing = True
    tracker.record(make_record(2))
    await eventually(lambda: traces_count(metrics, "journaled") == 1)
    details = await tracker.health()
    assert details["export_failing"] == "unreachable"
    assert details["journal_backlog"]["oldest_age_seconds"] > 3600
    backlog_bytes = metrics.registry.get_sample_value("trace_journal_backlog_bytes")
    assert backlog_bytes == details["journal_backlog"]["bytes"] > 0
