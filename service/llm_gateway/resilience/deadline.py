"""One overall time budget per request, shared by every attempt and every backoff sleep.

Timeouts bound one operation; a deadline bounds the whole request. Retries ask the deadline
how much time is left (`cap`) so that three retries of a 30 s attempt can never turn a request
into a two-minute wait: whatever happens, the caller gets an answer before `seconds` elapse.
"""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], float]


class Deadline:
    """A point in time (on an injectable monotonic clock) after which no more work is started."""

    __slots__ = ("_clock", "expires_at", "seconds")

    def __init__(self, seconds: float, clock: Clock = time.monotonic) -> None:
        if seconds <= 0:
            raise ValueError(f"a deadline needs a positive duration, got {seconds!r}")
        self.seconds = seconds
        self._clock = clock
        self.expires_at = clock() + seconds

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self.expires_at - self._clock())

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0.0

    def cap(self, timeout: float) -> float:
        """The timeout to give the next operation: `timeout`, shortened to what is left."""
        return min(timeout, self.remaining())

    def __repr__(self) -> str:
        return f"Deadline(seconds={self.seconds}, remaining={self.remaining():.3f})"
