"""`ExportState`: is MLflow taking our uploads, and if not, how is it failing?

The tracker asks it before each upload (a known outage journals at once instead of spending a
timeout per batch) and tells it every outcome. Each failed upload is counted by kind in
`trace_export_failures_total`; the log gets one line per change of state, never one per trace:

    up ──(500 / hang past the timeout / garbage / refused connection)──► down:<kind>   WARNING
    down:<kind> ──(another kind of failure)──────────────────────────► down:<other>  WARNING
    down:<kind> ──(an upload or a health probe succeeds)─────────────► up            INFO
"""

from __future__ import annotations

import logging

from llm_gateway.observability.metrics import Metrics
from llm_gateway.tracking.mlflow_export import FAILURE_REJECTED, failure_kind

log = logging.getLogger(__name__)

HEALTH_PROBE_FAILED = "health_probe_failed"


class ExportState:
    def __init__(self, metrics: Metrics | None) -> None:
        self.metrics = metrics
        self.down_kind: str | None = None

    @property
    def down(self) -> bool:
        return self.down_kind is not None

    def failed(self, exc: BaseException | None) -> None:
        """An upload raised `exc` (None: MLflow's health probe failed). A refusal of the records
        themselves is counted but leaves the state as it is: it says nothing about the server."""
        kind = failure_kind(exc) if exc is not None else HEALTH_PROBE_FAILED
        if self.metrics is not None and exc is not None:
            self.metrics.trace_export_failures.labels(kind).inc()
        if kind in (FAILURE_REJECTED, self.down_kind):
            return  # same state: no new line
        was = self.down_kind
        if exc is None and was is not None:
            return  # still down; the probe adds nothing to the upload's own failure
        self.down_kind = kind
        log.warning(
            "trace_export_failed",
            extra={
                "failure": kind,
                "previous_failure": was,
                "error_type": type(exc).__name__ if exc else "HealthCheckFailed",
                "error": str(exc)[:300] if exc else "MLflow /health did not answer 200",
                "detail": "traces go to the local journal until MLflow answers again",
            },
        )

    def succeeded(self) -> None:
        if self.down_kind is not None:
            log.info("trace_export_recovered", extra={"previous_failure": self.down_kind})
            self.down_kind = None


__all__ = ["ExportState"]
