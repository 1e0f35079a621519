"""What the admin security view shows: recent guard refusals of this worker process.

Per worker on purpose: it is a debugging window, not a ledger (Prometheus' prompt_rejections_total
is the fleet-wide count). Only the matched excerpt is kept, never the whole prompt, which may hold
data the caller did not mean to share with operators.
"""

from __future__ import annotations

import os
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from llm_gateway.errors import utc_now_iso


@dataclass(frozen=True, slots=True)
class SecurityEvent:
    timestamp: str
    kind: str
    rule: str
    user: str | None
    request_id: str | None
    excerpt: str


class SecurityMonitor:
    def __init__(self, max_recent: int = 100, clock: Callable[[], float] = time.time) -> None:
        self._recent: deque[SecurityEvent] = deque(maxlen=max_recent)
        self._counts: Counter[str] = Counter()
        self._started = clock()
        self._clock = clock

    def record(
        self, *, kind: str, rule: str, user: str | None, request_id: str | None, excerpt: str
    ) -> None:
        self._counts[f"{kind}:{rule}"] += 1
        self._recent.append(
            SecurityEvent(utc_now_iso(), kind, rule, user, request_id, excerpt[:80])
        )

    def snapshot(self) -> dict[str, Any]:
        return {
            "worker_pid": os.getpid(),
            "since_seconds": round(self._clock() - self._started, 1),
            "totals": dict(self._counts),
            "recent": [asdict(event) for event in reversed(self._recent)],
        }
