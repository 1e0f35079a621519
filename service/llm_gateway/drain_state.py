"""The worker's drain state: how many requests are in flight, and whether shutdown has begun.

One `DrainController` per app. The drain middleware counts requests through it; the gunicorn
worker's server calls `drain()` when SIGTERM arrives, which flips readiness to 503 at once and
waits (bounded) until every in-flight request and stream has finished. A request that still
arrives during the drain comes down a connection opened before it (kube-proxy's rules pin an
established keep-alive connection to its pod; the endpoint's removal only steers new ones): it
is served, with Connection: close so that the client's next request opens a connection to a
pod that is not leaving. When the drain is over uvicorn closes its listeners and connections and
runs the lifespan shutdown, which `close()`s this controller: only from then on, as the clients
close, is new work refused with 503 + Retry-After.
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
        self._closed = False
        self._idle = asyncio.Event()
        self._idle.set()
        self.drain_started_at: float | None = None

    @property
    def draining(self) -> bool:
        return self._draining

    @property
    def closed(self) -> bool:
        """The drain is over: the worker is about to close its clients and exit."""
        return self._closed

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

    def close(self, reason: str) -> None:
        """The worker is closing its clients (lifespan shutdown): refuse any new work from now."""
        self.begin(reason)
        self._closed = True

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
