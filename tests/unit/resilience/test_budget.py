"""The one time budget: LiteLLM's whole fallback chain fits in the attempt the gateway waits for."""

from __future__ import annotations

import pytest

from llm_gateway.resilience.budget import plan_attempt


@pytest.mark.parametrize(
    ("remaining", "chain", "per_model", "gateway"),
    [
        # No fallback: the model gets its whole timeout; the gateway waits for LiteLLM's own
        # timeout to be reported (margin), and may retry in what is left.
        pytest.param(45.0, 1, 30.0, 30.5, id="alone"),
        # The case: primary -> one fallback. Both fit in the deadline, and the gateway
        # waits for both (it used to abandon LiteLLM at 30 s, as it moved to the fallback).
        pytest.param(45.0, 2, 22.25, 45.0, id="one-fallback"),
        pytest.param(45.0, 3, 14.833, 45.0, id="smart-router"),
        pytest.param(10.0, 2, 4.75, 10.0, id="late-attempt"),
    ],
)
def test_the_chain_fits_in_what_the_deadline_has_left(
    remaining: float, chain: int, per_model: float, gateway: float
) -> None:
    plan = plan_attempt(remaining, 30.0, chain)
    assert plan is not None
    assert plan.upstream_timeout == pytest.approx(per_model, abs=1e-3)
    assert plan.gateway_timeout == pytest.approx(gateway)
    assert plan.upstream_timeout * chain <= plan.gateway_timeout <= remaining


def test_the_margin_shrinks_with_a_short_timeout() -> None:
    plan = plan_attempt(10.0, 0.02, 1)
    assert plan is not None
    assert plan.gateway_timeout == pytest.approx(0.022)


def test_no_time_left_is_no_plan() -> None:
    assert plan_attempt(0.3, 30.0, 2) is None
