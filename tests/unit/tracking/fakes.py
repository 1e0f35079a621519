"""Injected stand-ins for the tracking unit tests: an exporter that fails or hangs on command."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

from llm_gateway.errors import DependencyUnavailable
from llm_gateway.observability.metrics import Metrics
from llm_gateway.tracking.mlflow_export import FAILURE_REJECTED
from llm_gateway.tracking.records import TraceRecord


class FakeExporter:
    tracking_uri = "http://mlflow.test:5000"

    def __init__(self) -> None:
        self.received: list[TraceRecord] = []
        self.batches: list[int] = []
        self.failing = False
        self.healthy = True
        self.closed = False
        # While set to an Event, export() blocks until it is set (a hanging server).
        self.hang: threading.Event | None = None
        self.fail_after: int | None = None  # records accepted before failing mid-replay
        self.reject_ids: set[str] = set()  # records the server refuses for good (HTTP 400)
        self.delay = 0.0  # seconds each export takes (in its worker thread)
        self.error: Exception | None = None  # raised by every export while set
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()

    def export(self, records: list[TraceRecord]) -> None:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            self._export(records)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _export(self, records: list[TraceRecord]) -> None:
        if self.delay:
            time.sleep(self.delay)
        if self.error is not None:
            raise self.error
        if self.hang is not None:
            self.hang.wait(timeout=10)
        if self.failing:
            raise DependencyUnavailable("MLflow is down")
        if any(r.record_id in self.reject_ids for r in records):
            raise DependencyUnavailable(
                "span upload: HTTP 400", extra={"failure": FAILURE_REJECTED}
            )
        if self.fail_after is not None and len(self.received) + len(records) > self.fail_after:
            raise DependencyUnavailable("MLflow went down mid-replay")
        with self._lock:
            self.batches.append(len(records))
            self.received.extend(records)

    def health(self) -> bool:
        return self.healthy and not self.failing

    def close(self) -> None:
        self.closed = True


def make_record(n: int = 0, **overrides: object) -> TraceRecord:
    start = 1_700_000_000_000_000_000 + n * 1_000_000
    values: dict[str, object] = {
        "request_id": f"req-{n}",
        "user": "alice",
        "endpoint": "generate",
        "model_requested": "gpt-test",
        "model_used": "gpt-test",
        "inputs": {"prompt": f"question {n}", "temperature": 0.2},
        "outputs": f"answer {n}",
        "prompt_tokens": 3,
        "completion_tokens": 4,
        "total_tokens": 7,
        "started_at_ns": start,
        "ended_at_ns": start + 12_500_000,
    }
    values.update(overrides)
    return TraceRecord(**values)  # type: ignore[arg-type]


def traces_count(metrics: Metrics, outcome: str) -> float:
    value = metrics.registry.get_sample_value("traces_total", {"outcome": outcome})
    return value or 0.0


async def eventually(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    """Yield to the loop (and worker threads) until condition holds; fail after timeout."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)
