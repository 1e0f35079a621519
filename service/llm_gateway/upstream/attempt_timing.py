"""Each upstream attempt timed into `upstream_request_duration_seconds`, by model and outcome."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from llm_gateway.errors import GatewayError, ModelNotFound
from llm_gateway.observability.metrics import Metrics
from llm_gateway.resilience.retry import failure_reason

UNKNOWN_MODEL_LABEL = "(unknown)"


class AttemptTiming:
    def __init__(self, metrics: Metrics | None, clock: Callable[[], float]) -> None:
        self._metrics = metrics
        self._clock = clock

    @contextmanager
    def measure(self, model: str) -> Iterator[None]:
        started = self._clock()
        try:
            yield
        except BaseException as exc:
            # Callers pick model names: an unknown one must not mint a metric label.
            label = UNKNOWN_MODEL_LABEL if isinstance(exc, ModelNotFound) else model
            self._observe(label, _outcome(exc), started)
            raise
        self._observe(model, "success", started)

    def _observe(self, model: str, outcome: str, started: float) -> None:
        if self._metrics is not None:
            self._metrics.upstream_latency.labels(model, outcome).observe(self._clock() - started)


def _outcome(exc: BaseException) -> str:
    if isinstance(exc, GatewayError):
        return failure_reason(exc)
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    return "error"
