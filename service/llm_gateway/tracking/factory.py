"""Build the tracker from settings: the one place that knows which setting feeds which part.

No I/O happens here (the lifespan calls `await tracker.start()` and `await tracker.close(...)`).
"""

from __future__ import annotations

from llm_gateway.observability.metrics import Metrics
from llm_gateway.settings import Settings
from llm_gateway.tracking.journal import TraceJournal
from llm_gateway.tracking.mlflow_export import MlflowExporter
from llm_gateway.tracking.tracker import TraceTracker

JOURNAL_SUBDIR = "traces"
# Records wait at most this long to join a batch. MLflow's server spends ~17 ms of CPU per
# request on top of ~6 ms per trace (bench/trace_export.py: 23.5 ms/trace at batch 1, 6.3 at
# 100), so at 33 req/s a 50 ms linger (batches of 2-3) cost it 0.5 of a core, and the worker an
# upload (thread hop, HTTP) per 2-3 requests; half a second makes batches of ~16 at that rate.
# A trace shows up in MLflow that much later, which nobody reading traces notices.
EXPORT_BATCH_LINGER_SECONDS = 0.5


def build_trace_tracker(settings: Settings, metrics: Metrics | None) -> TraceTracker | None:
    """The tracker for these settings, or None when TRACKING_ENABLED is false.

    Without MLFLOW_TRACKING_URI the tracker still runs: every record goes to the journal under
    DATA_DIR/traces and is replayed once a tracking URI is configured (within the journal's bound).
    """
    if not settings.tracking_enabled:
        return None
    exporter = (
        MlflowExporter(
            settings.mlflow_tracking_uri,
            settings.mlflow_experiment_name,
            timeout=settings.trace_export_timeout,
        )
        if settings.mlflow_tracking_uri
        else None
    )
    journal = TraceJournal(
        settings.data_dir / JOURNAL_SUBDIR,
        max_bytes=settings.trace_journal_max_bytes,
        max_files=settings.trace_journal_max_files,
        metrics=metrics,
    )
    return TraceTracker(
        exporter,
        journal,
        metrics,
        queue_size=settings.trace_queue_size,
        replay_interval=settings.trace_replay_interval,
        batch_size=settings.trace_export_batch_size,
        concurrency=settings.trace_export_concurrency,
        backlog_warn_bytes=settings.trace_backlog_warn_bytes,
        batch_linger=EXPORT_BATCH_LINGER_SECONDS,
    )


__all__ = ["JOURNAL_SUBDIR", "build_trace_tracker"]
