"""The `memory://` store: moving windows kept in this process, O(1) per hit.

limits' async memory storage keeps each window as a list it prepends to (O(hits in window)
per hit) and starts a sweep task per hit that hops to a worker thread once per key: with the
generous limits a gateway runs, that cost grows with traffic (about 10 % of a worker's CPU per
request in bench/, at a few hundred requests per second). Here a window is a deque of hit times,
oldest first: a hit drops the times that left the window and appends its own. Same semantics as
limits' moving window: a hit is allowed while fewer than `limit` hits are in the last `expiry`
seconds, a refused hit is not counted, and the window resets when its oldest hit leaves it.
Memory is bounded: a window holds at most `limit` times, and idle windows are swept out.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class WindowHit:
    allowed: bool
    remaining: int
    reset_at: float  # epoch seconds when the oldest counted hit leaves the window


@dataclass(slots=True)
class _Window:
    expiry: float
    times: deque[float] = field(default_factory=deque)


class LocalWindows:
    def __init__(
        self, clock: Callable[[], float] = time.time, sweep_every_seconds: float = 60.0
    ) -> None:
        self._clock = clock
        self._windows: dict[str, _Window] = {}
        self._sweep_every = sweep_every_seconds
        self._next_sweep = clock() + sweep_every_seconds

    def __len__(self) -> int:
        return len(self._windows)

    def hit(self, key: str, limit: int, expiry: float) -> WindowHit:
        """Count one hit on `key`'s window unless it is full; where the window stands after."""
        now = self._clock()
        if now >= self._next_sweep:
            self._sweep(now)
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = _Window(expiry)
        times = window.times
        cutoff = now - expiry
        while times and times[0] < cutoff:
            times.popleft()
        allowed = len(times) < limit
        if allowed:
            times.append(now)
        reset_at = (times[0] if times else now) + expiry
        return WindowHit(allowed, limit - len(times), reset_at)

    def clear(self) -> None:
        self._windows.clear()

    def _sweep(self, now: float) -> None:
        # Windows whose newest hit has left them hold no count: forget them, or a stream of
        # one-off client addresses would grow this dict for the life of the worker.
        idle = [
            key for key, w in self._windows.items() if not w.times or w.times[-1] < now - w.expiry
        ]
        for key in idle:
            del self._windows[key]
        self._next_sweep = now + self._sweep_every
