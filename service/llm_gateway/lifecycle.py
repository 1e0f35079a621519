"""The worker's drain state: how many requests are in flight, and whether shutdown has begun.

One `DrainController` per app. The drain middleware counts requests through it; the gunicorn
worker's server calls `drain()` when SIGTERM arrives, which flips readiness to 503 at once,
refuses new work with 503 + Retry-After + Connection: close, and waits (bounded) until every
in-flight request and stream has finished. Only then does uvicorn close its listeners and run
the lifespan shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

log = logging.getLogger("llm_gateway.drain")


class DrainController:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._in_flight = 0
        self._draining = False
        self._idle = asyncio.Event()
        self._idle.set()
        self.drain_started_at: float | None = None

    @property
    def draining(self) -> bool:
        return self._draining

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def request_started(self) -> None:
        self._in_flight += 1
        self._idle.clear()

    def request_finished(self, path: str) -> None:
        self._in_flight -= 1
        if self._draining:
            log.info(
                "in_flight_request_completed",
                extra={"path": path, "remaining_in_flight": self._in_flight},
            )
        if self._in_flight == 0:
            self._idle.set()

    def begin(self, reason: str) -> None:
        """Stop taking new work. Idempotent; safe to call from the event loop only."""
        if self._draining:
            return
        self._draining = True
        self.drain_started_at = self._clock()
        log.info("shutdown_signal_received", extra={"reason": reason})
        log.info("waiting_for_in_flight_requests", extra={"in_flight": self._in_flight})

    async def drain(self, reason: str, timeout: float) -> bool:  # noqa: ASYNC109
        """Begin draining and wait until nothing is in flight; False if `timeout` ran out."""
        self.begin(reason)
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            log.warning(
                "drain_timeout_exceeded",
                extra={"timeout_seconds": timeout, "abandoned_in_flight": self._in_flight},
            )
            return False
        log.info("in_flight_requests_drained", extra={"drain_seconds": self.elapsed()})
        return True

    def elapsed(self) -> float:
        if self.drain_started_at is None:
            return 0.0
        return round(self._clock() - self.drain_started_at, 3)
