"""Circuit breakers, one per upstream model name, so a dead provider fails fast.

States::

    closed ──N consecutive failed attempts──► open ──recovery_seconds──► half_open
      ▲                                        ▲                           │ one probe
      └────────── probe answered (2xx or 4xx) ─┼───────────────────────────┤
                                               └──── probe failed ─────────┘

A *failure* is an attempt that got no usable verdict from a live upstream: a timeout, a
connection error or a 5xx. A 4xx (including 429 and 401) proves the upstream is alive and
answering, so it counts as success, and a half-open probe that ends in a 4xx closes the circuit.
An attempt that ends without any upstream verdict (the client went away, the task was
cancelled, a bug in our own code) is *neutral*: it changes no counter, but it always releases a
half-open probe slot, otherwise the breaker would stay half-open forever.

While open, `guard()` raises `CircuitOpen` (503 + Retry-After) at once, without touching the
network. While half-open, exactly one caller holds the probe; concurrent callers keep getting
`CircuitOpen` until the probe ends.

Breaker state is per worker process: each gunicorn worker (and each pod) learns about an outage
on its own, after `failure_threshold` failures of its own, and probes on its own. That is
acceptable because the cost is bounded and small (workers x pods x threshold extra failed
attempts per outage, each bounded by the request timeout), while sharing the state would put a
network store on the hot path of every upstream call, and that store can fail too. Every
worker's state is still visible: each publishes it to the `circuit_breaker_state` gauge, whose
multiprocess files hold one value per worker, and /health/detailed reads them all (the
`/metrics` gauge shows the worst worker).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from llm_gateway.errors import (
    CircuitOpen,
    ClientError,
    UpstreamAuthError,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from llm_gateway.health import CheckFailed
from llm_gateway.observability.metrics import BREAKER_STATE_VALUE, Metrics

log = logging.getLogger(__name__)

State = Literal["closed", "open", "half_open"]
Verdict = Literal["success", "failure", "neutral"]
_STATE_BY_VALUE: dict[float, State] = {
    float(value): state  # type: ignore[misc]
    for state, value in BREAKER_STATE_VALUE.items()
}
# {worker pid: {model: gauge value}}, e.g. Metrics.live_gauge_by_worker("circuit_breaker_state").
WorkerStates = Callable[[], Mapping[int, Mapping[str, float]]]


def attempt_verdict(exc: BaseException | None) -> Verdict:
    """What one attempt's outcome says about the upstream's health."""
    if exc is None:
        return "success"
    if isinstance(exc, UpstreamTimeout | UpstreamUnavailable):
        return "failure"
    if isinstance(exc, ClientError | UpstreamAuthError | UpstreamRateLimited):
        return "success"  # the upstream answered: it is alive
    if isinstance(exc, CircuitOpen):
        return "neutral"
    if isinstance(exc, UpstreamError):
        status = exc.upstream_status
        if status is not None and status < 500:
            return "success"
        return "failure"  # 5xx, broken first stream event, unreadable body
    return "neutral"  # cancellation, our own bugs: no upstream verdict


@dataclass
class _Breaker:
    state: State = "closed"
    consecutive_failures: int = 0
    opened_at: float = 0.0
    probe_in_flight: bool = False


class CircuitBreakerRegistry:
    def __init__(
        self,
        failure_threshold: int = 5,
        recovery_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        metrics: Metrics | None = None,
        worker_states: WorkerStates | None = None,
    ) -> None:
        """`worker_states` reads every worker's published states; None: this process only."""
        if failure_threshold < 1 or recovery_seconds <= 0:
            raise ValueError("failure_threshold must be >= 1 and recovery_seconds > 0")
        self.failure_threshold = failure_threshold
        self.recovery_seconds = recovery_seconds
        self._clock = clock
        self._metrics = metrics
        self._breakers: dict[str, _Breaker] = {}
        self._worker_states = worker_states

    @contextmanager
    def guard(self, model: str) -> Iterator[None]:
        """Wrap ONE upstream attempt: admits it or raises CircuitOpen, then records its verdict.

        The verdict comes from the exception leaving the block (none = success), so every exit
        path, cancellation included, settles the attempt. A plain `with`: nothing here awaits.
        """
        is_probe = self._admit(model)
        try:
            yield
        except BaseException as exc:
            self._settle(model, is_probe, attempt_verdict(exc))
            raise
        self._settle(model, is_probe, "success")

    def state(self, model: str) -> State:
        return self._breakers.get(model, _Breaker()).state

    def retry_after(self, model: str) -> float:
        breaker = self._breakers.get(model)
        if breaker is None or breaker.state == "closed":
            return 0.0
        if breaker.state == "half_open":
            return 0.0
        return max(0.0, breaker.opened_at + self.recovery_seconds - self._clock())

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {
            model: {
                "state": breaker.state,
                "consecutive_failures": breaker.consecutive_failures,
                "retry_after": round(self.retry_after(model), 3),
            }
            for model, breaker in sorted(self._breakers.items())
        }

    def states_by_worker(self) -> dict[str, dict[str, State]]:
        """{pid: {model: state}} for every live worker (this one always included)."""
        me = os.getpid()
        workers: dict[str, dict[str, State]] = {}
        if self._worker_states is not None:
            for pid, values in self._worker_states().items():
                workers[str(pid)] = {
                    model: _STATE_BY_VALUE.get(float(value), "open")
                    for model, value in sorted(values.items())
                }
        # This worker's own view is never stale, whatever the files say.
        workers[str(me)] = {model: b.state for model, b in sorted(self._breakers.items())}
        return dict(sorted(workers.items()))

    async def health_check(self) -> dict[str, Any]:
        """For /health/detailed (registered with cacheable=False).

        Down while any worker has a model's circuit open or half-open. `circuits` details this
        worker's (`answered_by`); `workers` lists every worker's states (only models that have
        failed at least once in a worker appear for it).
        """
        circuits = self.snapshot()
        workers = self.states_by_worker()
        details = {"answered_by": str(os.getpid()), "circuits": circuits, "workers": workers}
        tripped = sorted(
            {m for states in workers.values() for m, state in states.items() if state != "closed"}
        )
        if tripped:
            raise CheckFailed(f"circuit open for model(s): {', '.join(tripped)}", details)
        return details

    # --- transitions ------------------------------------------------------------------------

    def _admit(self, model: str) -> bool:
        """True when this attempt is the half-open probe; raises CircuitOpen when refused."""
        breaker = self._breakers.get(model)
        if breaker is None or breaker.state == "closed":
            return False
        if breaker.state == "open":
            if self.retry_after(model) > 0:
                raise self._refusal(model, self.retry_after(model))
            self._transition(model, breaker, "half_open")
        if breaker.probe_in_flight:
            raise self._refusal(model, 0.0)
        breaker.probe_in_flight = True
        return True

    def _settle(self, model: str, is_probe: bool, verdict: Verdict) -> None:
        breaker = self._breakers.get(model)
        if breaker is None:
            if verdict != "failure":
                return
            # Entries (and metric labels) exist only for models that failed at least once:
            # model names come from callers, and unknown ones end in a 400 that never gets here.
            breaker = self._breakers[model] = _Breaker()
            self._publish_state(model, breaker.state)
        if is_probe:
            breaker.probe_in_flight = False
        if verdict == "neutral":
            return
        if verdict == "success":
            breaker.consecutive_failures = 0
            if breaker.state != "closed" and is_probe:
                self._transition(model, breaker, "closed")
            return
        breaker.consecutive_failures += 1
        if is_probe or (
            breaker.state == "closed" and breaker.consecutive_failures >= self.failure_threshold
        ):
            breaker.opened_at = self._clock()
            self._transition(model, breaker, "open")

    def _transition(self, model: str, breaker: _Breaker, new_state: State) -> None:
        if breaker.state == new_state:
            return
        breaker.state = new_state
        fields = {"model": model, "consecutive_failures": breaker.consecutive_failures}
        if new_state == "open":
            fields["recovery_seconds"] = self.recovery_seconds
            log.warning("circuit_opened", extra=fields)
        elif new_state == "half_open":
            log.info("circuit_half_open", extra=fields)
        else:
            log.info("circuit_closed", extra=fields)
        if self._metrics is not None:
            self._metrics.breaker_transitions.labels(model, new_state).inc()
        self._publish_state(model, new_state)

    def _publish_state(self, model: str, state: State) -> None:
        if self._metrics is not None:
            self._metrics.breaker_state.labels(model).set(BREAKER_STATE_VALUE[state])

    def _refusal(self, model: str, retry_after: float) -> CircuitOpen:
        seconds = max(1, math.ceil(retry_after))
        return CircuitOpen(
            f"Circuit breaker is open for model '{model}'; retry after {seconds} s "
            "(the upstream failed repeatedly and is being given time to recover)",
            retry_after=retry_after,
            extra={"model": model},
        )
