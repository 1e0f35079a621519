"""`TraceTracker`: every LLM call's record reaches MLflow or the journal, off the request path.

    record() ──► bounded asyncio queue ──► export task ──► MlflowExporter (worker thread)
       │ (queue full)                          │ (failure, or MLflow known down)
       └────────────────────────────────────►  TraceJournal ◄── replay task (every interval,
                                                                 once MLflow answers /health)

A record is never dropped here: a full queue spills to the journal, a failed batch is journaled
whole, and `close()` journals whatever it could not export within its bound. Only the journal's
own size bound can drop records, and it counts and logs them.

Delivery to MLflow is at-least-once (a batch that failed half-way, or was still in flight when
shutdown gave up on it, is journaled and sent again); the exporter's trace ids are derived from
`record_id`, so a resend updates the same trace and the result is one trace per record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from llm_gateway.health import CheckFailed
from llm_gateway.observability.metrics import Metrics
from llm_gateway.tracking.journal import ClaimedFile, TraceJournal
from llm_gateway.tracking.mlflow_export import is_rejection
from llm_gateway.tracking.records import TraceRecord
from llm_gateway.urls import redact_url

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]


class TraceExporter(Protocol):
    """What the tracker needs from an exporter (MlflowExporter; fakes in unit tests)."""

    tracking_uri: str

    def export(self, records: list[TraceRecord]) -> None: ...

    def health(self) -> bool: ...

    def close(self) -> None: ...


class TraceTracker:
    def __init__(
        self,
        exporter: TraceExporter | None,
        journal: TraceJournal,
        metrics: Metrics | None,
        queue_size: int,
        replay_interval: float,
        batch_size: int = 50,
        *,
        batch_linger: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.exporter = exporter
        self.journal = journal
        self.metrics = metrics
        self.replay_interval = replay_interval
        self.batch_size = batch_size
        # Seconds the export task waits after the first record for more to join its batch: one
        # worker-thread hop and one journal append per batch instead of per request.
        self.batch_linger = batch_linger
        self._clock = clock
        self._sleep = sleep
        self._queue: asyncio.Queue[TraceRecord] = asyncio.Queue(maxsize=queue_size)
        self._in_flight: list[TraceRecord] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._journal_writes: set[asyncio.Future[int]] = set()
        self._mlflow_down = False
        self._closed = False

    # --- request path ------------------------------------------------------------------------
    def record(self, rec: TraceRecord) -> None:
        """Hand a record over without blocking; a full queue (or a closed tracker) journals it."""
        if not self._closed:
            try:
                self._queue.put_nowait(rec)
                return
            except asyncio.QueueFull:
                pass
        # One short appended line; rare by construction (the queue holds thousands).
        self._append_or_count([rec])

    def _append_or_count(self, records: list[TraceRecord]) -> int:
        """Journal records; if the disk itself fails, count and log them as dropped, never raise
        (the request path and the export task must survive a full or read-only volume)."""
        try:
            return self.journal.append(records)
        except OSError as exc:
            self._count("dropped", len(records))
            log.error(
                "trace_journal_write_failed",
                extra={"dropped": len(records), "error": f"{type(exc).__name__}: {exc}"},
            )
            return 0

    # --- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        await asyncio.to_thread(self.journal.open)
        self._tasks = [
            asyncio.create_task(self._export_loop(), name="trace-export"),
            asyncio.create_task(self._replay_loop(), name="trace-replay"),
        ]

    # The bound covers several steps (export, journal, close), not one awaitable: a parameter.
    async def close(self, timeout: float) -> None:  # noqa: ASYNC109
        """Export what is queued within `timeout`, journal the rest, close journal and exporter."""
        started = self._clock()
        self._closed = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._journal_writes:
            await asyncio.wait(self._journal_writes, timeout=max(0.1, timeout))
        # A batch whose export was cut short may or may not have arrived: journal it (a resend
        # is harmless, the trace ids are deterministic).
        pending = [*self._in_flight, *self._drain_queue()]
        self._in_flight = []
        exported = journaled = 0
        while pending:
            batch, pending = pending[: self.batch_size], pending[self.batch_size :]
            remaining = timeout - (self._clock() - started)
            if self.exporter is None or self._mlflow_down or remaining <= 0:
                pending = batch + pending
                break
            try:
                await asyncio.wait_for(self._send(batch, "exported"), remaining)
            except Exception as exc:  # any failure, TimeoutError included: journal below
                self._mark_down(exc)
                pending = batch + pending
                break
            exported += len(batch)
        if pending:
            journaled = self._append_or_count(pending)
        self.journal.close()
        if self.exporter is not None:
            self.exporter.close()
        log.info(
            "traces_flushed",
            extra={
                "exported": exported,
                "journaled": journaled,
                "duration_seconds": round(self._clock() - started, 3),
            },
        )

    # --- export ------------------------------------------------------------------------------
    def _drain_queue(self, limit: int | None = None) -> list[TraceRecord]:
        items: list[TraceRecord] = []
        while limit is None or len(items) < limit:
            try:
                items.append(self._queue.get_nowait())
            except asyncio.QueueEmpty:
                break
        return items

    async def _export_loop(self) -> None:
        while True:
            first = await self._queue.get()
            if self.batch_linger > 0 and self._queue.qsize() < self.batch_size - 1:
                # In flight while lingering, so a close() now still journals it.
                self._in_flight = [first]
                await asyncio.sleep(self.batch_linger)
            self._in_flight = [first, *self._drain_queue(self.batch_size - 1)]
            await self._deliver(self._in_flight)
            self._in_flight = []

    async def _deliver(self, batch: list[TraceRecord]) -> None:
        if self.exporter is None or self._mlflow_down:
            # Known outage: do not spend a timeout per batch; the replay task probes recovery.
            await self._journal_in_flight(batch)
            return
        try:
            await self._send(batch, "exported")
        except Exception as exc:
            self._mark_down(exc)
            await self._journal_in_flight(batch)

    async def _send(self, batch: list[TraceRecord], outcome: str) -> None:
        """Export a batch; raise on an outage. Records the server refuses for good are dropped."""
        assert self.exporter is not None
        try:
            await asyncio.to_thread(self.exporter.export, batch)
        except Exception as exc:
            if not is_rejection(exc):
                raise
            # A poison record must not block its batch (or the journal) forever: find it.
            for rec in batch:
                try:
                    await asyncio.to_thread(self.exporter.export, [rec])
                except Exception as one_exc:
                    if not is_rejection(one_exc):
                        raise
                    self._reject(rec, one_exc)
                else:
                    self._count(outcome, 1)
            return
        self._count(outcome, len(batch))

    def _reject(self, rec: TraceRecord, exc: BaseException) -> None:
        self._count("dropped", 1)
        log.error(
            "trace_rejected",
            extra={
                "record_id": rec.record_id,
                "trace_request_id": rec.request_id,
                "error": str(exc)[:300],
                "detail": "MLflow refused this record itself; it is dropped, not retried",
            },
        )

    async def _journal_in_flight(self, batch: list[TraceRecord]) -> None:
        # Once handed to the thread the append completes even if close() cancels us, so close()
        # must not journal the same batch again; it waits for the write instead (shielded, so
        # cancelling this task does not hide a write still running in its thread).
        self._in_flight = []
        write = asyncio.ensure_future(asyncio.to_thread(self._append_or_count, batch))
        self._journal_writes.add(write)
        write.add_done_callback(self._journal_writes.discard)
        await asyncio.shield(write)

    def _mark_down(self, exc: BaseException | None) -> None:
        if self._mlflow_down:
            return  # one warning per outage, not per record
        self._mlflow_down = True
        log.warning(
            "trace_export_failed",
            extra={
                "error_type": type(exc).__name__ if exc else "HealthCheckFailed",
                "error": str(exc)[:300] if exc else "MLflow /health did not answer 200",
                "detail": "traces go to the local journal until MLflow answers again",
            },
        )

    def _mark_up(self) -> None:
        if self._mlflow_down:
            self._mlflow_down = False
            log.info("trace_export_recovered")

    def _count(self, outcome: str, count: int) -> None:
        if self.metrics is not None and count:
            self.metrics.traces.labels(outcome).inc(count)

    # --- replay ------------------------------------------------------------------------------
    async def _replay_loop(self) -> None:
        while True:
            await self._sleep(self.replay_interval)
            try:
                await self.replay_once()
            except Exception:
                # The loop must outlive any one bad replay (a disk error, say); the journal
                # keeps the records for the next round.
                log.exception("trace_replay_failed")

    async def replay_once(self) -> int:
        """If MLflow answers, send the journal's claimable files; returns records replayed."""
        if self.exporter is None:
            return 0
        if not await asyncio.to_thread(self.exporter.health):
            self._mark_down(None)
            return 0
        self._mark_up()
        claims = await asyncio.to_thread(self.journal.claim)
        replayed = 0
        try:
            for claim in claims:
                replayed += await self._replay_claim(claim)
                if self._mlflow_down:
                    break
        finally:
            # Unsent records go back to the journal, also when close() cancels us mid-way.
            for claim in claims:
                claim.finish()
        if claims:
            log.info(
                "trace_journal_replayed",
                extra={
                    "replayed": replayed,
                    "files": len(claims),
                    "unreadable_lines": sum(c.unreadable_lines for c in claims),
                    "left_in_journal": sum(len(c.remaining) for c in claims),
                },
            )
        return replayed

    async def _replay_claim(self, claim: ClaimedFile) -> int:
        sent = 0
        while batch := claim.remaining[: self.batch_size]:
            try:
                await self._send(batch, "replayed")
            except Exception as exc:
                self._mark_down(exc)
                break
            claim.mark_sent(len(batch))
            sent += len(batch)
        return sent

    # --- health ------------------------------------------------------------------------------
    async def health(self) -> dict[str, Any]:
        """State for /health/detailed: MLflow reachability, queue depth, journal backlog."""
        reachable: bool | None = None
        if self.exporter is not None:
            reachable = await asyncio.to_thread(self.exporter.health)
        return {
            "mlflow_configured": self.exporter is not None,
            "mlflow_reachable": reachable,
            "tracking_uri": redact_url(self.exporter.tracking_uri) if self.exporter else None,
            "queue_depth": self._queue.qsize(),
            "journal_backlog": await asyncio.to_thread(self.journal.backlog),
        }

    async def health_details(self) -> dict[str, Any]:
        """A HealthChecker check: raises CheckFailed while a configured MLflow is unreachable."""
        details = await self.health()
        if details["mlflow_reachable"] is False:
            raise CheckFailed("MLflow /health did not answer 200", details)
        return details


__all__ = ["TraceExporter", "TraceTracker"]
