"""Whether the rate-limit store answers, and what a request meets when it does not.

`RATE_LIMIT_STORAGE_FAILURE` chooses: `open` serves the request unlimited, `closed` refuses it
with 503 (an incident id in the body and the ERROR log line). Either way the change of state is
logged once (one WARNING when the store starts failing, one when it answers again, not one per
request), `rate_limit_storage_up` says where this worker stands, and
`rate_limit_storage_failures_total{outcome}` counts the requests that met a failing store.

While the store is down, requests do not each wait for it: one probe is let through per
`retry_seconds`, and the others get the configured behaviour at once, so a store that
black-holes packets costs one timeout per second per worker, not one per request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Literal

from llm_gateway.observability.metrics import Metrics

log = logging.getLogger("llm_gateway.ratelimit")

FailureMode = Literal["open", "closed"]


class StorageHealth:
    def __init__(
        self,
        storage: str,
        mode: FailureMode,
        metrics: Metrics | None,
        *,
        retry_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`storage` is the store's redacted URI, for the log lines."""
        self.storage = storage
        self.mode = mode
        self._metrics = metrics
        self._retry_seconds = retry_seconds
        self._clock = clock
        self.up = True
        self._next_probe = 0.0
        self._publish()

    def should_try(self) -> bool:
        """False while the store is down and its next probe is not due."""
        if self.up:
            return True
        now = self._clock()
        if now < self._next_probe:
            return False
        self._next_probe = now + self._retry_seconds
        return True

    def failed(self, error: BaseException) -> None:
        """One request met a failing store (or skipped it while down)."""
        if self._metrics is not None:
            outcome = "allowed" if self.mode == "open" else "refused"
            self._metrics.rate_limit_storage_failures.labels(outcome).inc()
        if not self.up:
            return
        self.up = False
        self._next_probe = self._clock() + self._retry_seconds
        self._publish()
        log.warning(
            "rate_limit_storage_failing",
            extra={
                "storage": self.storage,
                "error_class": type(error).__name__,
                "failure_mode": self.mode,
                "detail": "requests are served without a limit until it answers"
                if self.mode == "open"
                else "requests are refused with 503 until it answers",
            },
        )

    def succeeded(self) -> None:
        if self.up:
            return
        self.up = True
        self._publish()
        log.warning(
            "rate_limit_storage_recovered",
            extra={"storage": self.storage, "failure_mode": self.mode},
        )

    def _publish(self) -> None:
        if self._metrics is not None:
            self._metrics.rate_limit_storage_up.set(1 if self.up else 0)
