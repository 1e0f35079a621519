"""ExportState and BacklogWatch: one log line per change of state, every failure counted."""

from __future__ import annotations

from pathlib import Path

from llm_gateway.errors import DependencyUnavailable
from llm_gateway.observability.metrics import Metrics
from llm_gateway.tracking.backlog import BacklogWatch
from llm_gateway.tracking.export_state import ExportState
from llm_gateway.tracking.journal import TraceJournal
from tests.support.logs import capture_json_logs
from tests.unit.tracking.fakes import make_record


def failure(kind: str) -> DependencyUnavailable:
    return DependencyUnavailable(f"upload failed: {kind}", extra={"failure": kind})


def failures_counted(metrics: Metrics, kind: str) -> float:
    value = metrics.registry.get_sample_value("trace_export_failures_total", {"kind": kind})
    return value or 0.0


def test_each_change_of_failure_is_one_line_and_every_failure_is_counted() -> None:
    metrics = Metrics()
    state = ExportState(metrics)
    with capture_json_logs() as logs:
        for _ in range(5):
            state.failed(failure("http_error"))  # MLflow answers 500s
        state.failed(None)  # the replay's health probe fails too: nothing new
        for _ in range(3):
            state.failed(failure("timeout"))  # then it hangs past the timeout
        state.failed(failure("rejected"))  # a poison record: not a state of the server
        state.succeeded()
        state.succeeded()

    changes = [(e["message"], e.get("failure"), e.get("previous_failure")) for e in logs.records]
    assert changes == [
        ("trace_export_failed", "http_error", None),
        ("trace_export_failed", "timeout", "http_error"),
        ("trace_export_recovered", None, "timeout"),
    ]
    assert failures_counted(metrics, "http_error") == 5
    assert failures_counted(metrics, "timeout") == 3
    assert failures_counted(metrics, "rejected") == 1
    assert not state.down


def test_an_upload_that_ends_after_the_state_changed_is_counted_but_does_not_flap_it() -> None:
    metrics = Metrics()
    state = ExportState(metrics)
    with capture_json_logs() as logs:
        # Four uploads in flight when MLflow stops: one fails first, the others end after it.
        tokens = [state.token() for _ in range(4)]
        state.failed(failure("unreachable"), tokens[0])
        state.succeeded(tokens[1])  # it had arrived before the stop
        state.failed(failure("timeout"), tokens[2])
        state.succeeded(tokens[3])
        assert state.down
        state.succeeded()  # the replay's health probe: MLflow is back
        # An upload sent before the recovery times out after it: old news too.
        late = state.token() - 1
        state.failed(failure("timeout"), late)
        fresh = state.token()
        state.failed(failure("http_error"), fresh)  # one sent since: a new failure

    changes = [(e["message"], e.get("failure")) for e in logs.records]
    assert changes == [
        ("trace_export_failed", "unreachable"),
        ("trace_export_recovered", None),
        ("trace_export_failed", "http_error"),
    ]
    assert failures_counted(metrics, "timeout") == 2  # every failure still counted
    assert failures_counted(metrics, "unreachable") == 1


def test_a_failed_health_probe_alone_marks_mlflow_down_once() -> None:
    state = ExportState(Metrics())
    with capture_json_logs() as logs:
        state.failed(None)
        state.failed(None)
    (event,) = logs.events("trace_export_failed")
    assert event["failure"] == "health_probe_failed"
    assert state.down


def test_the_backlog_warns_once_when_high_and_says_once_when_normal(tmp_path: Path) -> None:
    metrics = Metrics()
    journal = TraceJournal(tmp_path, max_bytes=10**6, max_files=5, metrics=metrics)
    one_record = len(make_record(0).to_json()) + 1
    watch = BacklogWatch(journal, metrics, warn_bytes=3 * one_record)
    with capture_json_logs() as logs:
        for n in range(6):
            journal.append([make_record(n)])
            watch.look()
        for claim in journal.claim():
            claim.mark_sent(len(claim.records))
            claim.finish()
        watch.look()
        watch.look()
    journal.close()

    assert [(e["message"], e["level"]) for e in logs.records] == [
        ("trace_backlog_high", "WARNING"),
        ("trace_backlog_normal", "INFO"),
    ]
    high = logs.events("trace_backlog_high")[0]
    assert high["bytes"] == 3 * one_record
    assert high["bound_bytes"] == 5 * 10**6
    assert metrics.registry.get_sample_value("trace_journal_backlog_bytes") == 0
    assert metrics.registry.get_sample_value("trace_journal_oldest_age_seconds") == 0
