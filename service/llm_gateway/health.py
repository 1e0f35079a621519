"""Dependency checks for readiness and /health/detailed.

Liveness never comes here: it answers from the process alone. Each check is an async callable
that returns optional details or raises; the part that owns it registers it by name where the
part is built (wiring.py), so adding a check is that one line. `HealthChecker` runs the requested
ones concurrently,
each under its own timeout, and reuses results younger than the TTL so that a burst of
/health/detailed calls cannot become a burst of calls to every dependency.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

log = logging.getLogger(__name__)

CheckFn = Callable[[], Awaitable[Mapping[str, Any] | None]]


class CheckFailed(Exception):
    """A check's way to say 'down' with details, e.g. an open circuit."""

    def __init__(self, reason: str, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.details = dict(details or {})


@dataclass(frozen=True)
class Check:
    run: CheckFn
    # In-process checks (the circuit breaker) are free and must never be stale.
    cacheable: bool = True


@dataclass(frozen=True)
class CheckResult:
    status: Literal["up", "down"]
    latency_ms: float
    checked_at: float
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"status": self.status, "latency_ms": self.latency_ms}
        if self.error:
            body["error"] = self.error
        body.update(self.details)
        return body


class HealthChecker:
    def __init__(
        self, *, timeout: float, ttl: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._checks: dict[str, Check] = {}
        self._timeout = timeout
        self._ttl = ttl
        self._clock = clock
        self._results: dict[str, CheckResult] = {}
        self._running: dict[str, asyncio.Task[CheckResult]] = {}

    def register(self, name: str, run: CheckFn, *, cacheable: bool = True) -> None:
        """Add a check; `cacheable=False` for in-process checks that are free and never stale."""
        if name in self._checks:
            raise ValueError(f"a health check named {name!r} is already registered")
        self._checks[name] = Check(run, cacheable)

    @property
    def names(self) -> list[str]:
        return list(self._checks)

    async def run(
        self, names: Iterable[str] | None = None, *, max_age: float | None = None
    ) -> dict[str, CheckResult]:
        wanted = [n for n in (self._checks if names is None else names) if n in self._checks]
        age_limit = self._ttl if max_age is None else max_age
        results = await asyncio.gather(*(self._result(name, age_limit) for name in wanted))
        return dict(zip(wanted, results, strict=True))

    async def _result(self, name: str, age_limit: float) -> CheckResult:
        check = self._checks[name]
        cached = self._results.get(name)
        if check.cacheable and cached and self._clock() - cached.checked_at <= age_limit:
            return cached
        # Concurrent callers share one in-flight check instead of each hitting the dependency.
        task = self._running.get(name)
        if task is None:
            task = asyncio.ensure_future(self._execute(name, check))
            self._running[name] = task
            task.add_done_callback(lambda _done: self._running.pop(name, None))
        return await asyncio.shield(task)

    async def _execute(self, name: str, check: Check) -> CheckResult:
        started = self._clock()
        try:
            details = await asyncio.wait_for(check.run(), self._timeout)
            result = CheckResult(
                "up", _ms(self._clock() - started), self._clock(), details=dict(details or {})
            )
        except CheckFailed as exc:
            result = CheckResult(
                "down", _ms(self._clock() - started), self._clock(), str(exc), exc.details
            )
        except TimeoutError:
            result = CheckResult(
                "down",
                _ms(self._clock() - started),
                self._clock(),
                f"no answer within {self._timeout:g}s",
            )
        except Exception as exc:  # a check must report, never crash the probe
            result = CheckResult(
                "down",
                _ms(self._clock() - started),
                self._clock(),
                f"{type(exc).__name__}: {exc}",
            )
        if result.status == "down":
            log.warning("dependency_check_failed", extra={"check": name, "error": result.error})
        self._results[name] = result
        return result


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)
