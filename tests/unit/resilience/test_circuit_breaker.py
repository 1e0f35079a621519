from __future__ import annotations

import asyncio
import os

import pytest

from llm_gateway.errors import (
    CircuitOpen,
    ModelNotFound,
    UpstreamAuthError,
    UpstreamBadRequest,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from llm_gateway.observability.metrics import Metrics
from llm_gateway.resilience.breaker import CircuitBreakerRegistry
from tests.support.logs import capture_json_logs
from tests.unit.resilience.fakes import FakeClock

MODEL = "gpt-4o-mini"


def registry(clock: FakeClock, metrics: Metrics | None = None) -> CircuitBreakerRegistry:
    return CircuitBreakerRegistry(
        failure_threshold=5, recovery_seconds=30, clock=clock, metrics=metrics
    )


def fail(breakers: CircuitBreakerRegistry, error: BaseException, model: str = MODEL) -> None:
    with pytest.raises(type(error)), breakers.guard(model):
        raise error


def succeed(breakers: CircuitBreakerRegistry, model: str = MODEL) -> None:
    with breakers.guard(model):
        pass


def open_circuit(breakers: CircuitBreakerRegistry) -> None:
    for _ in range(5):
        fail(breakers, UpstreamUnavailable("down"))
    assert breakers.state(MODEL) == "open"


def test_opens_after_five_consecutive_failures_not_before() -> None:
    breakers = registry(FakeClock())
    for _ in range(4):
        fail(breakers, UpstreamTimeout("slow"))
    assert breakers.state(MODEL) == "closed"
    fail(breakers, UpstreamError("boom", upstream_status=500))
    assert breakers.state(MODEL) == "open"


def test_models_that_never_failed_take_no_room() -> None:
    breakers = registry(FakeClock())
    for number in range(100):
        succeed(breakers, model=f"model-{number}")
        fail(breakers, ModelNotFound("nope"), model=f"unknown-{number}")
    assert breakers.snapshot() == {}
    fail(breakers, UpstreamTimeout("slow"))
    assert breakers.snapshot() == {
        MODEL: {"state": "closed", "consecutive_failures": 1, "retry_after": 0.0}
    }


def test_a_success_resets_the_consecutive_count() -> None:
    breakers = registry(FakeClock())
    for _ in range(4):
        fail(breakers, UpstreamUnavailable("down"))
    succeed(breakers)
    for _ in range(4):
        fail(breakers, UpstreamUnavailable("down"))
    assert breakers.state(MODEL) == "closed"
    assert breakers.snapshot()[MODEL]["consecutive_failures"] == 4


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(ModelNotFound("Model 'x' not found"), id="unknown-model"),
        pytest.param(UpstreamBadRequest("bad", upstream_status=400), id="400"),
        pytest.param(UpstreamAuthError(upstream_status=401), id="401"),
        pytest.param(UpstreamRateLimited("slow down", retry_after=1), id="429"),
    ],
)
def test_client_errors_never_count_as_failures(error: Exception) -> None:
    breakers = registry(FakeClock())
    for _ in range(4):
        fail(breakers, UpstreamTimeout("slow"))
    for _ in range(10):
        fail(breakers, error)
    assert breakers.snapshot()[MODEL]["consecutive_failures"] == 0  # the upstream answered
    for _ in range(4):
        fail(breakers, UpstreamTimeout("slow"))
    assert breakers.state(MODEL) == "closed"


def test_breakers_are_per_model() -> None:
    breakers = registry(FakeClock())
    open_circuit(breakers)
    succeed(breakers, model="other-model")
    assert breakers.state("other-model") == "closed"


def test_open_circuit_refuses_at_once_with_retry_after() -> None:
    clock = FakeClock()
    breakers = registry(clock)
    open_circuit(breakers)
    clock.advance(12)
    entered = False
    with pytest.raises(CircuitOpen) as raised, breakers.guard(MODEL):
        entered = True
    assert not entered
    assert raised.value.retry_after == pytest.approx(18)
    assert raised.value.response_headers()["Retry-After"] == "18"
    assert raised.value.status_code == 503
    assert str(raised.value).startswith(
        f"Circuit breaker is open for model '{MODEL}'; retry after 18 s"
    )
    assert breakers.snapshot()[MODEL] == {
        "state": "open",
        "consecutive_failures": 5,
        "retry_after": pytest.approx(18),
    }


def test_half_open_lets_exactly_one_probe_through() -> None:
    clock = FakeClock()
    breakers = registry(clock)
    open_circuit(breakers)
    clock.advance(30)
    with breakers.guard(MODEL):
        assert breakers.state(MODEL) == "half_open"
        for _ in range(3):  # concurrent callers while the probe is in flight
            with pytest.raises(CircuitOpen), breakers.guard(MODEL):
                pass
    assert breakers.state(MODEL) == "closed"


def test_probe_success_closes_and_probe_failure_reopens_for_a_full_period() -> None:
    clock = FakeClock()
    breakers = registry(clock)
    open_circuit(breakers)
    clock.advance(30)
    fail(breakers, UpstreamTimeout("still slow"))
    assert breakers.state(MODEL) == "open"
    assert breakers.retry_after(MODEL) == pytest.approx(30)
    clock.advance(30)
    succeed(breakers)
    assert breakers.state(MODEL) == "closed"
    assert breakers.snapshot()[MODEL]["consecutive_failures"] == 0


def test_probe_answered_with_a_4xx_closes_the_circuit() -> None:
    clock = FakeClock()
    breakers = registry(clock)
    open_circuit(breakers)
    clock.advance(30)
    fail(breakers, UpstreamBadRequest("bad request", upstream_status=400))
    assert breakers.state(MODEL) == "closed"


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(asyncio.CancelledError(), id="cancelled"),
        pytest.param(RuntimeError("the caller never reached upstream"), id="never-reached"),
    ],
)
def test_probe_without_an_upstream_verdict_releases_the_slot(error: BaseException) -> None:
    clock = FakeClock()
    breakers = registry(clock)
    open_circuit(breakers)
    clock.advance(30)
    fail(breakers, error)
    assert breakers.state(MODEL) == "half_open"
    succeed(breakers)  # the next caller may probe at once, and its success closes
    assert breakers.state(MODEL) == "closed"


async def test_a_cancelled_task_holding_the_probe_releases_it() -> None:
    clock = FakeClock()
    breakers = registry(clock)
    open_circuit(breakers)
    clock.advance(30)
    started = asyncio.Event()

    async def probe() -> None:
        with breakers.guard(MODEL):
            started.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(probe())
    await started.wait()
    with pytest.raises(CircuitOpen), breakers.guard(MODEL):
        pass
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    succeed(breakers)
    assert breakers.state(MODEL) == "closed"


def test_transitions_are_logged_and_exported_as_metrics() -> None:
    clock = FakeClock()
    metrics = Metrics()
    breakers = registry(clock, metrics)
    sample = metrics.registry.get_sample_value
    with capture_json_logs() as logs:
        succeed(breakers)
        assert sample("circuit_breaker_state", {"model": MODEL}) is None  # no label for healthy
        fail(breakers, UpstreamTimeout("slow"))
        assert sample("circuit_breaker_state", {"model": MODEL}) == 0
        for _ in range(4):
            fail(breakers, UpstreamTimeout("slow"))
        assert sample("circuit_breaker_state", {"model": MODEL}) == 2
        clock.advance(30)
        with breakers.guard(MODEL):
            assert sample("circuit_breaker_state", {"model": MODEL}) == 1
        assert sample("circuit_breaker_state", {"model": MODEL}) == 0
    events = [(r["message"], r["level"], r["model"]) for r in logs.records]
    assert events == [
        ("circuit_opened", "WARNING", MODEL),
        ("circuit_half_open", "INFO", MODEL),
        ("circuit_closed", "INFO", MODEL),
    ]
    for state in ("open", "half_open", "closed"):
        labels = {"model": MODEL, "state": state}
        assert sample("circuit_breaker_transitions_total", labels) == 1


async def test_health_check_is_down_while_a_circuit_is_open() -> None:
    from llm_gateway.health import CheckFailed

    clock = FakeClock()
    breakers = registry(clock)
    me = str(os.getpid())
    assert await breakers.health_check() == {
        "answered_by": me,
        "circuits": {},
        "workers": {me: {}},
    }
    open_circuit(breakers)
    with pytest.raises(CheckFailed, match=f"circuit open for model\\(s\\): {MODEL}") as raised:
        await breakers.health_check()
    assert raised.value.details["circuits"][MODEL]["state"] == "open"
    clock.advance(30)
    succeed(breakers)
    assert (await breakers.health_check())["circuits"][MODEL]["state"] == "closed"


async def test_health_check_shows_every_workers_circuits_and_is_down_when_any_is_open() -> None:
    from llm_gateway.health import CheckFailed

    # What the multiprocess gauge files say (Metrics.live_gauge_by_worker): a sibling worker
    # 4242 has MODEL open, another has it half-open; this worker has never seen it fail.
    published = {4242: {MODEL: 2.0, "other-model": 0.0}, 4343: {MODEL: 1.0}}
    breakers = CircuitBreakerRegistry(
        failure_threshold=5, recovery_seconds=30, clock=FakeClock(), worker_states=lambda: published
    )
    with pytest.raises(CheckFailed, match=f"circuit open for model\\(s\\): {MODEL}") as raised:
        await breakers.health_check()
    details = raised.value.details
    me = str(os.getpid())
    assert details["answered_by"] == me
    assert details["circuits"] == {}
    assert details["workers"] == {
        "4242": {MODEL: "open", "other-model": "closed"},
        "4343": {MODEL: "half_open"},
        me: {},
    }

    published.clear()
    assert (await breakers.health_check())["workers"] == {me: {}}
