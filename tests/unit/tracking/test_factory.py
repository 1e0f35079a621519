"""Settings decide whether the tracker exists, where its journal lives, whether MLflow is used."""

from __future__ import annotations

from pathlib import Path

from llm_gateway.observability.metrics import Metrics
from llm_gateway.tracking.factory import build_trace_tracker
from tests.support.settings import make_settings
from tests.unit.tracking.fakes import make_record


def test_tracking_disabled_builds_no_tracker(tmp_path: Path) -> None:
    assert build_trace_tracker(make_settings(tmp_path, tracking_enabled="false"), None) is None


async def test_without_a_tracking_uri_records_land_in_the_journal_under_data_dir(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path, tracking_enabled="true", trace_queue_size="7")
    tracker = build_trace_tracker(settings, Metrics())
    assert tracker is not None
    assert tracker.exporter is None
    await tracker.start()
    tracker.record(make_record(1))
    await tracker.close(timeout=1)

    assert tracker.journal.directory == tmp_path / "traces"
    assert len(list((tmp_path / "traces").glob("traces-*.jsonl"))) == 1


def test_a_tracking_uri_gives_an_mlflow_exporter(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        tracking_enabled="true",
        mlflow_tracking_uri="http://mlflow:5000",
        mlflow_experiment_name="prod-gateway",
    )
    tracker = build_trace_tracker(settings, None)
    assert tracker is not None and tracker.exporter is not None
    assert tracker.exporter.tracking_uri == "http://mlflow:5000"
    assert tracker.exporter.experiment_name == "prod-gateway"  # type: ignore[attr-defined]
    tracker.exporter.close()
