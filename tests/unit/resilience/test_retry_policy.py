from __future__ import annotations

from collections.abc import Callable

import pytest

from llm_gateway.errors import (
    CircuitOpen,
    GatewayError,
    ModelNotFound,
    UpstreamAuthError,
    UpstreamBadRequest,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from llm_gateway.observability.metrics import Metrics
from llm_gateway.resilience.deadline import Deadline
from llm_gateway.resilience.retry import RetryPolicy
from tests.support.logs import capture_json_logs
from tests.unit.resilience.fakes import FakeClock


def http_error(status: int, retry_after: float | None = None) -> UpstreamError:
    return UpstreamError(f"HTTP {status}", retry_after=retry_after, upstream_status=status)


class FailingAttempts:
    """An attempt function that raises the scripted errors, then returns 'ok'."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def policy(clock: FakeClock, **overrides: float) -> RetryPolicy:
    settings: dict[str, float] = {"jitter": 0.5, "retry_after_cap": 10.0}
    settings.update(overrides)
    return RetryPolicy(sleep=clock.sleep, random=lambda: 0.5, **settings)  # type: ignore[arg-type]


async def test_backoff_doubles_from_one_second_plus_injected_jitter() -> None:
    clock = FakeClock()
    attempts = FailingAttempts(*(http_error(503) for _ in range(10)))
    with pytest.raises(UpstreamError):
        await policy(clock).run(attempts, deadline=Deadline(60, clock), model="m")
    assert attempts.calls == 4  # the first try and 3 retries
    assert clock.sleeps == [1.25, 2.25, 4.25]


async def test_each_delay_is_capped_by_backoff_max() -> None:
    clock = FakeClock()
    attempts = FailingAttempts(*(http_error(502) for _ in range(10)))
    with pytest.raises(UpstreamError):
        await policy(clock, backoff_max=2.0).run(attempts, deadline=Deadline(60, clock), model="m")
    assert clock.sleeps == [1.25, 2.0, 2.0]


@pytest.mark.parametrize(
    "make_error",
    [
        pytest.param(lambda: UpstreamTimeout("slow"), id="timeout"),
        pytest.param(lambda: UpstreamUnavailable("refused"), id="connection-error"),
        pytest.param(lambda: http_error(502), id="502"),
        pytest.param(lambda: http_error(503), id="503"),
        pytest.param(lambda: http_error(504), id="504"),
        pytest.param(lambda: UpstreamRateLimited("slow down"), id="429-without-retry-after"),
    ],
)
async def test_transient_failures_are_retried_until_success(
    make_error: Callable[[], GatewayError],
) -> None:
    clock = FakeClock()
    attempts = FailingAttempts(make_error(), make_error())
    result = await policy(clock).run(attempts, deadline=Deadline(60, clock), model="m")
    assert result == "ok"
    assert attempts.calls == 3


async def test_a_500_is_retried_once_and_then_raised() -> None:
    clock = FakeClock()
    attempts = FailingAttempts(*(http_error(500) for _ in range(3)))
    with pytest.raises(UpstreamError):
        await policy(clock).run(attempts, deadline=Deadline(60, clock), model="m")
    assert attempts.calls == 2


async def test_a_timeout_is_not_retried_when_the_model_has_fallbacks() -> None:
    clock = FakeClock()
    attempts = FailingAttempts(UpstreamTimeout("silent"), UpstreamTimeout("silent"))
    with pytest.raises(UpstreamTimeout):
        await policy(clock).run(
            attempts, deadline=Deadline(60, clock), model="m", retry_timeouts=False
        )
    assert attempts.calls == 1


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(ModelNotFound("Model 'x' not found"), id="unknown-model"),
        pytest.param(UpstreamBadRequest("bad", upstream_status=400), id="400"),
        pytest.param(UpstreamBadRequest("bad", upstream_status=422), id="422"),
        pytest.param(UpstreamAuthError(upstream_status=401), id="401"),
        pytest.param(CircuitOpen("open", retry_after=3), id="circuit-open"),
        pytest.param(RuntimeError("bug"), id="our-own-bug"),
    ],
)
async def test_permanent_failures_are_raised_after_one_attempt(error: BaseException) -> None:
    clock = FakeClock()
    attempts = FailingAttempts(error)
    with pytest.raises(type(error)) as raised:
        await policy(clock).run(attempts, deadline=Deadline(60, clock), model="m")
    assert raised.value is error
    assert attempts.calls == 1
    assert clock.sleeps == []


@pytest.mark.parametrize(
    "make_error",
    [
        pytest.param(lambda s: UpstreamRateLimited("limited", retry_after=s), id="429"),
        pytest.param(lambda s: http_error(503, retry_after=s), id="503"),
    ],
)
async def test_retry_after_within_the_cap_is_waited_exactly(
    make_error: Callable[[float], GatewayError],
) -> None:
    clock = FakeClock()
    attempts = FailingAttempts(make_error(3.0), make_error(7.0))
    assert await policy(clock).run(attempts, deadline=Deadline(60, clock), model="m") == "ok"
    assert clock.sleeps == [3.0, 7.0]


async def test_retry_after_beyond_the_cap_surfaces_the_429_at_once() -> None:
    clock = FakeClock()
    error = UpstreamRateLimited("limited", retry_after=30.0)
    attempts = FailingAttempts(error)
    with pytest.raises(UpstreamRateLimited) as raised:
        await policy(clock).run(attempts, deadline=Deadline(60, clock), model="m")
    assert raised.value.retry_after == 30.0
    assert attempts.calls == 1
    assert clock.sleeps == []


async def test_the_deadline_stops_retrying_and_ends_in_a_timeout() -> None:
    clock = FakeClock()
    attempts = FailingAttempts(*(http_error(503) for _ in range(10)))
    with pytest.raises(UpstreamTimeout, match="deadline of 5 s") as raised:
        await policy(clock).run(attempts, deadline=Deadline(5, clock), model="m")
    # 1.25 s then 2.25 s fit in 5 s; the third delay (4.25 s) would not.
    assert clock.sleeps == [1.25, 2.25]
    assert attempts.calls == 3
    assert raised.value.status_code == 504
    assert isinstance(raised.value.__cause__, UpstreamError)


async def test_a_rate_limit_cut_short_by_the_deadline_stays_a_429() -> None:
    clock = FakeClock()
    attempts = FailingAttempts(UpstreamRateLimited("limited", retry_after=8.0))
    with pytest.raises(UpstreamRateLimited):
        await policy(clock).run(attempts, deadline=Deadline(5, clock), model="m")
    assert clock.sleeps == []


async def test_zero_retries_means_one_attempt() -> None:
    clock = FakeClock()
    attempts = FailingAttempts(http_error(503))
    with pytest.raises(UpstreamError):
        await policy(clock, max_retries=0).run(attempts, deadline=Deadline(60, clock), model="m")
    assert attempts.calls == 1


async def test_each_retry_logs_one_event_and_counts_in_metrics() -> None:
    clock = FakeClock()
    metrics = Metrics()
    attempts = FailingAttempts(UpstreamUnavailable("refused"), http_error(503))
    with capture_json_logs() as logs:
        await policy(clock).run(
            attempts, deadline=Deadline(60, clock), model="gpt-x", metrics=metrics
        )
    events = logs.events("upstream_retry")
    assert [(e["attempt"], e["error_class"], e["status"], e["delay_seconds"]) for e in events] == [
        (1, "UpstreamUnavailable", None, 1.25),
        (2, "UpstreamError", 503, 2.25),
    ]
    assert all(e["model"] == "gpt-x" and e["level"] == "WARNING" for e in events)
    sample = metrics.registry.get_sample_value
    assert sample("upstream_retries_total", {"model": "gpt-x", "reason": "connection"}) == 1
    assert sample("upstream_retries_total", {"model": "gpt-x", "reason": "http_503"}) == 1


async def test_a_final_429_without_retry_after_still_tells_the_caller_when_to_return() -> None:
    clock = FakeClock()
    attempts = FailingAttempts(*(UpstreamRateLimited("limited") for _ in range(10)))
    with pytest.raises(UpstreamRateLimited) as raised:
        await policy(clock).run(attempts, deadline=Deadline(60, clock), model="m")
    assert clock.sleeps == [1.25, 2.25, 4.25]
    assert raised.value.retry_after == 8.0  # the next backoff step (capped), never absent
    assert raised.value.response_headers()["Retry-After"] == "8"
