"""Which upstream failures are retried, how long to wait, and when to give up.

Built on tenacity's `AsyncRetrying` with our own retry/wait/stop/before_sleep callables and an
injected `sleep` and `random`, so unit tests run the whole schedule without waiting.

Retried (transient): timeouts, connection errors, 502/503/504 and 429, and a 500 once per
request (a chat completion is safe to repeat, but a 500 that comes back twice is the request's
own, and more tries would only repeat it at more cost). Never retried: 400, 401, 403, 404, 422
(the same request fails the same way). A timed-out attempt is not retried when the model has
fallbacks (`retry_timeouts=False`): LiteLLM already spent the attempt walking its chain, and the
same silent model would only eat the rest of the deadline. Nothing is retried once a byte of the
answer reached the caller: streams are retried only while they open (see upstream/recovery.py
for what happens after).

Delays: `backoff_base * 2**n` (1 s, 2 s, 4 s) plus uniform jitter in [0, jitter], capped at
`backoff_max`. A 429/503 carrying `Retry-After` waits exactly that when it is at most
`retry_after_cap`; a longer one surfaces the error at once (the caller gets the Retry-After).
Nothing ever sleeps past the request `Deadline`: when the next delay plus a minimal attempt does
not fit in what remains, retrying stops and the request ends with `UpstreamTimeout` (504), or
with the 429/503 itself when the upstream said when to come back. A final 429 or 503 always
carries `Retry-After`, so the caller knows when no model can answer now.
"""

from __future__ import annotations

import asyncio
import logging
import random as random_module
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState

from llm_gateway.errors import (
    GatewayError,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from llm_gateway.observability.metrics import Metrics
from llm_gateway.resilience.deadline import Deadline

log = logging.getLogger(__name__)

T = TypeVar("T")
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
# A 500 is retried this many times per request, whatever RETRIES_AFTER_FIRST_TRY allows.
MAX_RETRIES_OF_500 = 1


def failure_reason(exc: BaseException) -> str:
    """A short, bounded label for logs and the retries metric."""
    if isinstance(exc, UpstreamTimeout):
        return "timeout"
    if isinstance(exc, UpstreamUnavailable):
        return "connection" if exc.upstream_status is None else f"http_{exc.upstream_status}"
    if isinstance(exc, UpstreamRateLimited):
        return "rate_limited"
    status = upstream_status(exc)
    if status is not None:
        return f"http_{status}"
    return type(exc).__name__


def upstream_status(exc: BaseException) -> int | None:
    if isinstance(exc, UpstreamRateLimited):
        return 429
    if isinstance(exc, GatewayError):
        return exc.upstream_status
    return None


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, UpstreamTimeout | UpstreamUnavailable | UpstreamRateLimited):
        return True
    # Plain UpstreamError (not a subclass such as CircuitOpen or StreamInterrupted).
    return type(exc) is UpstreamError and upstream_status(exc) in RETRYABLE_STATUSES


class RetryPolicy:
    def __init__(
        self,
        max_retries: int = 3,
        backoff_base: float = 1.0,
        backoff_max: float = 8.0,
        jitter: float = 0.5,
        retry_after_cap: float = 10.0,
        *,
        min_attempt_seconds: float = 0.05,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        random: Callable[[], float] = random_module.random,
    ) -> None:
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.jitter = jitter
        self.retry_after_cap = retry_after_cap
        # An attempt given less time than this cannot succeed; don't sleep only to start it.
        self.min_attempt_seconds = min_attempt_seconds
        self._sleep = sleep
        self._random = random

    def backoff(self, retry_number: int) -> float:
        """Delay before retry `retry_number` (1-based) when the upstream named none."""
        delay = self.backoff_base * 2.0 ** (retry_number - 1) + self.jitter * self._random()
        return min(delay, self.backoff_max)

    def delay_for(self, exc: BaseException, retry_number: int) -> float | None:
        """Seconds to wait before the next try, or None when the error says: do not retry."""
        if not is_transient(exc):
            return None
        retry_after = exc.retry_after if isinstance(exc, GatewayError) else None
        if retry_after is not None and upstream_status(exc) in (429, 503):
            wait = float(retry_after)
            return wait if wait <= self.retry_after_cap else None
        return self.backoff(retry_number)

    async def run(
        self,
        attempt: Callable[[], Awaitable[T]],
        *,
        deadline: Deadline,
        model: str,
        metrics: Metrics | None = None,
        retry_timeouts: bool = True,
        retries: int | None = None,
    ) -> T:
        """Call `attempt` until it succeeds or a stop rule holds; raise the right final error.

        `retry_timeouts=False` (the model has fallbacks): a timed-out attempt ends the call.
        `retries` overrides `max_retries` for this call (0: the caller has a better next step).
        """
        max_retries = self.max_retries if retries is None else retries
        failures_500 = 0

        def retryable(exc: BaseException) -> bool:
            nonlocal failures_500
            if not is_transient(exc):
                return False
            if isinstance(exc, UpstreamTimeout) and not retry_timeouts:
                return False
            if upstream_status(exc) == 500:
                failures_500 += 1
                return failures_500 <= MAX_RETRIES_OF_500
            return True

        # Most calls succeed at once: make the first attempt without building a retry loop
        # (tenacity's per-call set-up was ~3 % of a worker's CPU). A transient failure enters the
        # loop as its first attempt, replayed, so every rule below sees it as before.
        try:
            return await attempt()
        except Exception as exc:
            if max_retries == 0 or not retryable(exc):
                _with_retry_after(exc, self.backoff(1))
                raise
            first_failure: list[BaseException] = [exc]

        async def replay_then_attempt() -> T:
            if first_failure:
                raise first_failure.pop()
            return await attempt()

        # Decided once per failed attempt by `wait`, read by `stop` and `before_sleep`.
        planned: dict[str, float | None] = {"delay": None}

        def retry(state: RetryCallState) -> bool:
            outcome = state.outcome
            return outcome is not None and outcome.failed and is_transient(_error(state))

        def wait(state: RetryCallState) -> float:
            exc = _error(state)
            if state.attempt_number == 1:
                planned["delay"] = self.delay_for(exc, 1)  # judged by `retryable` above
            else:
                planned["delay"] = (
                    self.delay_for(exc, state.attempt_number) if retryable(exc) else None
                )
            return planned["delay"] or 0.0

        def stop(state: RetryCallState) -> bool:
            delay = planned["delay"]
            if delay is None or state.attempt_number > max_retries:
                return True
            return delay + self.min_attempt_seconds > deadline.remaining()

        def give_up(state: RetryCallState) -> T:
            exc = _error(state)
            delay = planned["delay"]
            # The caller's 429 or 503 always says when to come back, even if the upstream didn't.
            _with_retry_after(exc, self.backoff(state.attempt_number))
            out_of_time = (
                delay is not None
                and state.attempt_number <= max_retries
                and delay + self.min_attempt_seconds > deadline.remaining()
            )
            # A 429 or 503 is already the honest answer ("not now, come back then").
            answered = UpstreamRateLimited | UpstreamTimeout | UpstreamUnavailable
            if out_of_time and not isinstance(exc, answered):
                raise UpstreamTimeout(
                    f"The request deadline of {deadline.seconds:g} s left no time to retry "
                    f"after {state.attempt_number} attempt(s); last upstream error: {exc}",
                    extra={"attempts": state.attempt_number},
                ) from exc
            raise exc

        def before_sleep(state: RetryCallState) -> None:
            exc = _error(state)
            reason = failure_reason(exc)
            log.warning(
                "upstream_retry",
                extra={
                    "model": model,
                    "attempt": state.attempt_number,
                    "error_class": type(exc).__name__,
                    "status": upstream_status(exc),
                    "reason": reason,
                    "delay_seconds": round(state.upcoming_sleep, 3),
                },
            )
            if metrics is not None:
                metrics.upstream_retries.labels(model, reason).inc()

        retrying = AsyncRetrying(
            sleep=self._sleep,
            retry=retry,
            wait=wait,
            stop=stop,
            before_sleep=before_sleep,
            retry_error_callback=give_up,
        )
        result: T = await retrying(replay_then_attempt)
        return result


def _with_retry_after(exc: BaseException, default: float) -> BaseException:
    if isinstance(exc, UpstreamRateLimited | UpstreamUnavailable) and exc.retry_after is None:
        exc.retry_after = default
    return exc


def _error(state: RetryCallState) -> BaseException:
    assert state.outcome is not None
    exc = state.outcome.exception()
    assert exc is not None
    return exc
