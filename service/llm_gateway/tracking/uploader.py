"""`BatchUploader`: sends batches of records to MLflow, a bounded number at once, and accounts.

The tracker's live export and its journal replay both upload through one uploader, so together
they never have more than `concurrency` uploads in flight (each blocking call runs in a worker
thread; the exporter's httpx client is thread-safe). An upload either succeeds (counted by
outcome, its records' export lag observed) or raises for the caller to journal the batch; the one
exception is a record MLflow refuses for good (HTTP 400/413, an unconvertible span), which is
found by resending the batch record by record and then dropped, counted and logged, so that one
poison record cannot hold its batch, or the journal, forever.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from llm_gateway.observability.metrics import Metrics
from llm_gateway.tracking.export_state import ExportState
from llm_gateway.tracking.mlflow_export import is_rejection
from llm_gateway.tracking.records import TraceRecord, now_ns

log = logging.getLogger(__name__)


class TraceExporter(Protocol):
    """What the tracker needs from an exporter (MlflowExporter; fakes in unit tests)."""

    tracking_uri: str

    def export(self, records: list[TraceRecord]) -> None: ...

    def health(self) -> bool: ...

    def close(self) -> None: ...


class BatchUploader:
    def __init__(
        self, exporter: TraceExporter, state: ExportState, metrics: Metrics | None, concurrency: int
    ) -> None:
        self.exporter = exporter
        self.state = state
        self.metrics = metrics
        self.slots = asyncio.Semaphore(concurrency)

    async def upload(self, batch: list[TraceRecord], outcome: str) -> None:
        """`send` once a slot is free."""
        async with self.slots:
            await self.send(batch, outcome)

    async def send(self, batch: list[TraceRecord], outcome: str) -> None:
        """Export a batch (the caller holds a slot, or is shutting down); raise on an outage,
        which is already counted and told to the export state."""
        token = self.state.token()
        try:
            await asyncio.to_thread(self.exporter.export, batch)
        except Exception as exc:
            if not is_rejection(exc):
                self.state.failed(exc, token)
                raise
            for rec in batch:
                try:
                    await asyncio.to_thread(self.exporter.export, [rec])
                except Exception as one_exc:
                    if not is_rejection(one_exc):
                        self.state.failed(one_exc, token)
                        raise
                    self._reject(rec, one_exc)
                else:
                    self._acknowledged(outcome, [rec], token)
            return
        self._acknowledged(outcome, batch, token)

    def _acknowledged(self, outcome: str, batch: list[TraceRecord], token: int) -> None:
        self.state.succeeded(token)
        if self.metrics is not None:
            self.metrics.traces.labels(outcome).inc(len(batch))
            now = now_ns()
            for rec in batch:
                self.metrics.trace_export_lag.observe(max(0, now - rec.ended_at_ns) / 1e9)

    def _reject(self, rec: TraceRecord, exc: BaseException) -> None:
        self.state.failed(exc)
        if self.metrics is not None:
            self.metrics.traces.labels("dropped").inc()
        log.error(
            "trace_rejected",
            extra={
                "record_id": rec.record_id,
                "trace_request_id": rec.request_id,
                "error": str(exc)[:300],
                "detail": "MLflow refused this record itself; it is dropped, not retried",
            },
        )


__all__ = ["BatchUploader", "TraceExporter"]
