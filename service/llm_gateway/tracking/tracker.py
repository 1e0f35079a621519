"""`TraceTracker`: every LLM call's record reaches MLflow or the journal, off the request path.

    record() ──► bounded asyncio queue ──► export task ──► up to `concurrency` uploads in flight,
       │ (queue full)                          │            each a batch of `batch_size` records
       │                                       │            in one OTLP request (worker threads)
       │                                       │ (failure, or MLflow known down)
       └────────────────────────────────────►  TraceJournal ◄── replay task (every interval,
                                                                 once MLflow answers /health;
                                                                 concurrent windows of batches)

A record is never dropped here: a full queue spills to the journal, a failed batch is journaled
whole, and `close()` journals whatever it could not export within its bound. Only the journal's
own size bound can drop records, and it counts and logs them.

Why batches and concurrency: one upload costs the server a round trip and a database transaction
whatever its size, so one synchronous upload per trace caps a worker at a few traces per second,
far below the request rate; batches of 100 with 4 in flight move two orders of magnitude more
(bench/trace_export.py), so the journal drains faster than it fills after an outage.

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
from typing import Any

from llm_gateway.health import CheckFailed
from llm_gateway.observability.metrics import Metrics
from llm_gateway.tracking.backlog import BacklogWatch
from llm_gateway.tracking.export_state import ExportState
from llm_gateway.tracking.journal import ClaimedFile, TraceJournal
from llm_gateway.tracking.records import TraceRecord
from llm_gateway.tracking.uploader import BatchUploader, TraceExporter
from llm_gateway.urls import redact_url

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]


class TraceTracker:
    def __init__(
        self,
        exporter: TraceExporter | None,
        journal: TraceJournal,
        metrics: Metrics | None,
        queue_size: int,
        replay_interval: float,
        batch_size: int = 100,
        *,
        concurrency: int = 4,
        backlog_warn_bytes: int = 50_000_000,
        batch_linger: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.exporter = exporter
        self.journal = journal
        self.metrics = metrics
        self.replay_interval = replay_interval
        self.batch_size = batch_size
        self.concurrency = concurrency
        self._state = ExportState(metrics)
        # Live export and replay share its slots: never more uploads in flight than this.
        self._uploader = (
            BatchUploader(exporter, self._state, metrics, concurrency) if exporter else None
        )
        self._uploads: set[asyncio.Task[None]] = set()
        self.backlog = BacklogWatch(journal, metrics, backlog_warn_bytes)
        # Seconds the export task waits after the first record for more to join its batch: one
        # worker-thread hop and one journal append per batch instead of per request.
        self.batch_linger = batch_linger
        self._clock = clock
        self._sleep = sleep
        self._queue: asyncio.Queue[TraceRecord] = asyncio.Queue(maxsize=queue_size)
        # Batches taken off the queue and not yet exported or handed to the journal, by id(): a
        # close() journals them (their uploads may or may not have arrived; a resend is harmless).
        self._in_flight: dict[int, list[TraceRecord]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._journal_writes: set[asyncio.Future[int]] = set()
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
            if self.metrics is not None:
                self.metrics.traces.labels("dropped").inc(len(records))
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
        tasks = [*self._tasks, *self._uploads]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._journal_writes:
            await asyncio.wait(self._journal_writes, timeout=max(0.1, timeout))
        # A batch whose export was cut short may or may not have arrived: journal it (a resend
        # is harmless, the trace ids are deterministic).
        pending = [rec for batch in self._in_flight.values() for rec in batch]
        pending += self._drain_queue()
        self._in_flight = {}
        exported = journaled = 0
        while pending:
            batch, pending = pending[: self.batch_size], pending[self.batch_size :]
            remaining = timeout - (self._clock() - started)
            if self._uploader is None or self._state.down or remaining <= 0:
                pending = batch + pending
                break
            try:
                await asyncio.wait_for(self._uploader.send(batch, "exported"), remaining)
            except Exception:  # any failure (send counted it), TimeoutError included: journal
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
            batch = [first]
            # In flight from here, so a close() while it lingers or waits for a slot journals it.
            self._in_flight[id(batch)] = batch
            if self.batch_linger > 0 and self._queue.qsize() < self.batch_size - 1:
                await asyncio.sleep(self.batch_linger)
            batch.extend(self._drain_queue(self.batch_size - 1))
            if self._uploader is None or self._state.down:
                # Known outage: do not spend a timeout per batch; the replay task probes recovery.
                await self._journal_in_flight(batch)
                continue
            # Waiting for a slot is the back-pressure: the queue fills, then spills to the journal.
            await self._uploader.slots.acquire()
            upload = asyncio.create_task(self._deliver(self._uploader, batch), name="trace-upload")
            self._uploads.add(upload)
            upload.add_done_callback(self._uploads.discard)

    async def _deliver(self, uploader: BatchUploader, batch: list[TraceRecord]) -> None:
        """One live upload; owns the slot the export loop took for it until it ends."""
        try:
            await uploader.send(batch, "exported")
        except Exception:  # counted by send; the batch waits in the journal
            await self._journal_in_flight(batch)
        else:
            self._in_flight.pop(id(batch), None)
        finally:
            uploader.slots.release()

    async def _journal_in_flight(self, batch: list[TraceRecord]) -> None:
        # Once handed to the thread the append completes even if close() cancels us, so close()
        # must not journal the same batch again; it waits for the write instead (shielded, so
        # cancelling this task does not hide a write still running in its thread).
        self._in_flight.pop(id(batch), None)
        write = asyncio.ensure_future(asyncio.to_thread(self._append_or_count, batch))
        self._journal_writes.add(write)
        write.add_done_callback(self._journal_writes.discard)
        await asyncio.shield(write)

    # --- replay ------------------------------------------------------------------------------
    async def _replay_loop(self) -> None:
        replayed = 0
        while True:
            # A round that sent something goes again at once: a file journaled during it (live
            # batches that failed just before MLflow came back) would otherwise wait a whole
            # interval, 15 s added to a 50 s drain in bench/trace_load.py.
            if not replayed:
                await self._sleep(self.replay_interval)
            replayed = 0
            try:
                replayed = await self.replay_once()
                await asyncio.to_thread(self.backlog.look)
            except Exception:
                # The loop must outlive any one bad replay (a disk error, say); the journal
                # keeps the records for the next round.
                log.exception("trace_replay_failed")

    async def replay_once(self) -> int:
        """If MLflow answers, send the journal's claimable files; returns records replayed."""
        if self.exporter is None or self._uploader is None:
            return 0
        if not await asyncio.to_thread(self.exporter.health):
            self._state.failed(None)
            return 0
        self._state.succeeded()
        claims = await asyncio.to_thread(self.journal.claim)
        replayed = 0
        try:
            for claim in claims:
                replayed += await self._replay_claim(self._uploader, claim)
                if self._state.down:
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

    async def _replay_claim(self, uploader: BatchUploader, claim: ClaimedFile) -> int:
        """Send a claim in windows of `concurrency` batches at once; stop at the first failure.

        Only the unbroken run of sent batches from the start is marked sent: a later batch of a
        failed window that did arrive is sent again next time (harmless, the ids are fixed).
        """
        sent = 0
        size = self.batch_size
        while head := claim.remaining[: size * self.concurrency]:
            window = [head[i : i + size] for i in range(0, len(head), size)]
            results = await asyncio.gather(
                *(uploader.upload(batch, "replayed") for batch in window), return_exceptions=True
            )
            for batch, result in zip(window, results, strict=True):
                if isinstance(result, BaseException):
                    if not isinstance(result, Exception):
                        raise result  # cancellation: the claim is settled by the caller
                    return sent  # counted by the upload
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
            "export_failing": self._state.down_kind,
            "queue_depth": self._queue.qsize(),
            "uploads_in_flight": len(self._uploads),
            "journal_backlog": await asyncio.to_thread(self.backlog.look),
        }

    async def health_details(self) -> dict[str, Any]:
        """A HealthChecker check: raises CheckFailed while a configured MLflow is unreachable."""
        details = await self.health()
        if details["mlflow_reachable"] is False:
            raise CheckFailed("MLflow /health did not answer 200", details)
        return details


__all__ = ["TraceExporter", "TraceTracker"]
