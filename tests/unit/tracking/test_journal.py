"""The trace journal: per-worker files, bounded rotation, atomic claims, nothing lost silently."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from llm_gateway.observability.metrics import Metrics
from llm_gateway.tracking.journal import TraceJournal
from llm_gateway.tracking.records import TraceRecord
from tests.support.logs import capture_json_logs
from tests.unit.tracking.fakes import make_record, traces_count

REPO = Path(__file__).resolve().parents[3]
OpenJournal = Callable[..., TraceJournal]


@pytest.fixture
def journal_at() -> Iterator[OpenJournal]:
    """Build journals that are closed (their locks released) when the test ends."""
    opened: list[TraceJournal] = []

    def build(
        directory: Path, max_bytes: int = 10**6, max_files: int = 5, metrics: Metrics | None = None
    ) -> TraceJournal:
        journal = TraceJournal(directory, max_bytes, max_files, metrics)
        opened.append(journal)
        return journal

    yield build
    for journal in opened:
        journal.close()


def replay_all(journal: TraceJournal) -> list[TraceRecord]:
    sent: list[TraceRecord] = []
    for claim in journal.claim():
        sent.extend(claim.remaining)
        claim.mark_sent(len(claim.remaining))
        claim.finish()
    return sent


def data_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.name.startswith("traces-"))


def test_appended_records_come_back_in_order_and_the_files_are_gone_after_replay(
    tmp_path: Path, journal_at: OpenJournal
) -> None:
    journal = journal_at(tmp_path, max_bytes=1_000_000, max_files=5)
    records = [make_record(n) for n in range(5)]
    assert journal.append(records) == 5

    assert replay_all(journal) == records
    assert data_files(tmp_path) == []
    assert replay_all(journal) == []
    journal.close()


def test_a_journal_rotates_at_max_bytes_and_keeps_every_record(
    tmp_path: Path, journal_at: OpenJournal
) -> None:
    line_size = len(make_record(0).to_json()) + 1
    journal = journal_at(tmp_path, max_bytes=line_size * 3, max_files=10)
    journal.append([make_record(n) for n in range(10)])
    journal.close()

    files = data_files(tmp_path)
    assert len(files) == 4  # 3 + 3 + 3 + 1
    assert all(path.stat().st_size <= line_size * 3 for path in files)
    assert [r.request_id for r in replay_all(journal_at(tmp_path, 10**6, 10))] == [
        f"req-{n}" for n in range(10)
    ]


def test_rotation_beyond_the_byte_bound_drops_the_oldest_file_and_counts_and_logs_it(
    tmp_path: Path, journal_at: OpenJournal
) -> None:
    metrics = Metrics()
    line_size = len(make_record(0).to_json()) + 1
    journal = journal_at(tmp_path, max_bytes=line_size * 2, max_files=2, metrics=metrics)

    with capture_json_logs() as logs:
        journal.append([make_record(n) for n in range(7)])  # files of 2, 2, 2, 1
    journal.close()

    dropped_events = logs.events("trace_journal_dropped")
    assert [e["dropped"] for e in dropped_events] == [2, 2]
    assert all(e["level"] == "ERROR" for e in dropped_events)
    assert traces_count(metrics, "dropped") == 4
    assert traces_count(metrics, "journaled") == 7
    kept = replay_all(journal_at(tmp_path, 10**6, 5))
    assert [r.request_id for r in kept] == ["req-4", "req-5", "req-6"]


def test_a_partly_replayed_claim_goes_back_holding_only_the_unsent_records(
    tmp_path: Path, journal_at: OpenJournal
) -> None:
    journal = journal_at(tmp_path, max_bytes=10**6, max_files=5)
    records = [make_record(n) for n in range(5)]
    journal.append(records)

    (claim,) = journal.claim()
    claim.mark_sent(2)
    claim.finish()

    assert replay_all(journal) == records[2:]
    journal.close()


def test_two_journals_never_claim_the_same_file(tmp_path: Path, journal_at: OpenJournal) -> None:
    line_size = len(make_record(0).to_json()) + 1
    writer = journal_at(tmp_path, max_bytes=line_size * 2, max_files=20)
    writer.append([make_record(n) for n in range(12)])
    writer.close()  # a worker that exited: its files are anyone's to replay
    first = journal_at(tmp_path, 10**6, 5)
    second = journal_at(tmp_path, 10**6, 5)

    first_claims = first.claim()
    second_claims = second.claim()

    first_ids = {r.record_id for c in first_claims for r in c.records}
    second_ids = {r.record_id for c in second_claims for r in c.records}
    assert len(first_ids) == 12
    assert second_ids == set()
    assert all(".replaying." in c.path.name for c in first_claims)


def test_a_live_workers_files_are_left_to_it(tmp_path: Path, journal_at: OpenJournal) -> None:
    line_size = len(make_record(0).to_json()) + 1
    live = journal_at(tmp_path, max_bytes=line_size, max_files=20)
    live.append([make_record(n) for n in range(3)])
    other = journal_at(tmp_path, 10**6, 5)

    assert other.claim() == []
    assert len(replay_all(live)) == 3
    live.close()
    other.close()


def test_files_of_a_worker_that_died_without_closing_are_claimed(
    tmp_path: Path, journal_at: OpenJournal
) -> None:
    # A real process writes and then dies hard (no close, lock file left behind).
    script = textwrap.dedent(
        f"""
        import os, sys
        sys.path[:0] = [{str(REPO / "service")!r}, {str(REPO)!r}]
        from llm_gateway.tracking.journal import TraceJournal
        from tests.unit.tracking.fakes import make_record
        journal = TraceJournal({str(tmp_path)!r}, max_bytes=10**6, max_files=5)
        journal.append([make_record(n) for n in range(4)])
        os._exit(0)
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    assert list(tmp_path.glob("owner-*.lock")), "the dead worker's lock file stays behind"

    survivor = journal_at(tmp_path, 10**6, 5)
    assert [r.request_id for r in replay_all(survivor)] == [f"req-{n}" for n in range(4)]
    survivor.close()
    assert list(tmp_path.iterdir()) == []


def test_a_claim_abandoned_by_a_dead_replayer_is_claimed_again(
    tmp_path: Path, journal_at: OpenJournal
) -> None:
    writer = journal_at(tmp_path, 10**6, 5)
    writer.append([make_record(n) for n in range(3)])
    writer.close()
    crashed_replayer = journal_at(tmp_path, 10**6, 5)
    assert len(crashed_replayer.claim()) == 1
    crashed_replayer.close()  # releases its lock as the OS would on death

    assert len(replay_all(journal_at(tmp_path, 10**6, 5))) == 3


def test_a_truncated_last_line_is_skipped_counted_and_logged(
    tmp_path: Path, journal_at: OpenJournal
) -> None:
    metrics = Metrics()
    writer = journal_at(tmp_path, 10**6, 5)
    writer.append([make_record(n) for n in range(3)])
    writer.close()
    (path,) = data_files(tmp_path)
    with path.open("ab") as handle:
        handle.write(make_record(99).to_json()[:40])  # crash mid-write

    with capture_json_logs(logging.ERROR) as logs:
        replayed = replay_all(journal_at(tmp_path, 10**6, 5, metrics=metrics))

    assert [r.request_id for r in replayed] == ["req-0", "req-1", "req-2"]
    (event,) = logs.events("trace_journal_dropped")
    assert event["reason"] == "unreadable_line"
    assert event["dropped"] == 1
    assert traces_count(metrics, "dropped") == 1


@pytest.mark.parametrize(
    "record",
    [
        pytest.param(make_record(1), id="ok-call"),
        pytest.param(
            make_record(2, status="error", outputs=None, cache_tier="semantic", stream=True),
            id="failed-streamed-call",
        ),
    ],
)
def test_a_record_survives_the_journal_unchanged(
    tmp_path: Path, journal_at: OpenJournal, record: TraceRecord
) -> None:
    journal = journal_at(tmp_path, 10**6, 5)
    journal.append([record])
    assert replay_all(journal) == [record]
    journal.close()


def test_backlog_reports_files_bytes_and_the_oldest_age(
    tmp_path: Path, journal_at: OpenJournal
) -> None:
    journal = journal_at(tmp_path / "journal", 10**6, 5)
    assert journal.backlog() == {"files": 0, "bytes": 0, "oldest_age_seconds": 0.0}
    oldest, newer = make_record(0), make_record(1)
    journal.append([oldest, newer])
    backlog = journal.backlog(now_ns=oldest.ended_at_ns + 90 * 10**9)
    assert backlog["files"] == 1
    assert backlog["bytes"] == len(oldest.to_json()) + len(newer.to_json()) + 2
    assert backlog["oldest_age_seconds"] == 90.0  # the first record's, not the newest
    journal.close()


def test_replay_rounds_cut_short_leave_small_files_and_none_is_dropped_under_the_bound(
    tmp_path: Path, journal_at: OpenJournal
) -> None:
    # A flapping MLflow: every replay round closes the active file, sends nothing, and gives the
    # records back as a file. Counting files (max_files=2) dropped 918 traces in bench/trace_load.
    metrics = Metrics()
    line_size = len(make_record(0).to_json()) + 1
    journal = journal_at(tmp_path, max_bytes=line_size * 10, max_files=2, metrics=metrics)
    with capture_json_logs() as logs:
        for n in range(8):
            journal.append([make_record(n)])
            for claim in journal.claim():
                claim.finish()  # nothing sent: the records go back to the journal
    assert len(list(tmp_path.glob("traces-*.jsonl"))) == 8
    assert logs.events("trace_journal_dropped") == []
    assert traces_count(metrics, "dropped") == 0
    journal.close()
    kept = replay_all(journal_at(tmp_path, 10**6, 5))
    assert sorted(r.request_id for r in kept) == sorted(f"req-{n}" for n in range(8))
