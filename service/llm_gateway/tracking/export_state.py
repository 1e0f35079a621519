"""`ExportState`: is MLflow taking our uploads, and if not, how is it failing?

The tracker asks it before each upload (a known outage journals at once instead of spending a
timeout per batch) and tells it every outcome. Each failed upload is counted by kind in
`trace_export_failures_total`; the log gets one line per change of state, never one per trace:

    up ──(500 / hang past the timeout / garbage / refused connection)──► down:<kind>   WARNING
    down:<kind> ──(another kind of failure)──────────────────────────► down:<other>  WARNING
    down:<kind> ──(an upload or a health probe succeeds)─────────────► up            INFO

Uploads overlap (several in flight), so an outcome can arrive after the state it speaks of has
changed: an upload sent before MLflow stopped may succeed after another one failed, and one sent
to a slow server may time out after a health probe said it is back. An upload takes a `token()`
when it starts; its outcome moves the state only if the state has not changed since. A stale
outcome is still counted, but it does not flap the state (and the log) back and forth.
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
        self._changes = 0  # state changes so far: what a token compares against

    @property
    def down(self) -> bool:
        return self.down_kind is not None

    def token(self) -> int:
        """Taken by an upload as it starts, and handed back with its outcome."""
        return self._changes

    def failed(self, exc: BaseException | None, token: int | None = None) -> None:
        """An upload raised `exc` (None: MLflow's health probe failed). A refusal of the records
        themselves is counted but leaves the state as it is: it says nothing about the server.
        `token`: the upload's (None: an outcome of now, such as a probe's)."""
        kind = failure_kind(exc) if exc is not None else HEALTH_PROBE_FAILED
        if self.metrics is not None and exc is not None:
            self.metrics.trace_export_failures.labels(kind).inc()
        if kind in (FAILURE_REJECTED, self.down_kind) or self._stale(token):
            return  # same state (or news of an older one): no new line
        was = self.down_kind
        if exc is None and was is not None:
            return  # still down; the probe adds nothing to the upload's own failure
        self.down_kind = kind
        self._changes += 1
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

    def succeeded(self, token: int | None = None) -> None:
        if self.down_kind is not None and not self._stale(token):
            log.info("trace_export_recovered", extra={"previous_failure": self.down_kind})
            self.down_kind = None
            self._changes += 1

    def _stale(self, token: int | None) -> bool:
        return token is not None and token != self._changes


__all__ = ["ExportState"]
