"""One time budget, end to end: how long an attempt may take, and how long LiteLLM may take.

LiteLLM tries a model group's fallbacks one after another, each bounded by the request's
`timeout` (which overrides its configured per-model timeout). If the gateway gave up on an
attempt when LiteLLM's first model timed out, it would cut LiteLLM off exactly as it moved to the
fallback, and the caller would lose the answer LiteLLM alone would have given. So per attempt::

    per_model = min(UPSTREAM_REQUEST_TIMEOUT, (remaining - margin) / chain)
    gateway   = min(remaining, per_model * chain + margin)

where `chain` is the model plus its fallbacks (read from LiteLLM) and `margin` is LiteLLM's own
time to fail one model and start the next. The whole chain fits in what the deadline has left,
and the gateway waits for all of it. docs/failure-semantics.md has the worked numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

# LiteLLM's own overhead between giving up on one model and calling the next, and what the
# gateway waits beyond LiteLLM's chain so that LiteLLM reports its own timeout. At most a tenth
# of the per-model timeout, so a short timeout is not dominated by it.
LITELLM_MARGIN_SECONDS = 0.5


@dataclass(frozen=True, slots=True)
class AttemptPlan:
    gateway_timeout: float  # how long the gateway waits for this attempt, LiteLLM's chain included
    upstream_timeout: float  # LiteLLM's timeout for each model of the chain (the request `timeout`)


def plan_one_model(remaining: float, model_timeout: float, models_left: int) -> AttemptPlan | None:
    """The plan when the gateway walks the cascade itself (streams, upstream/recovery.py): this
    model gets its share of what is left, and the gateway waits for this model only."""
    plan = plan_attempt(remaining, model_timeout, models_left)
    if plan is None:
        return None
    margin = min(LITELLM_MARGIN_SECONDS, model_timeout / 10)
    return AttemptPlan(
        gateway_timeout=min(remaining, plan.upstream_timeout + margin),
        upstream_timeout=plan.upstream_timeout,
    )


def plan_attempt(
    remaining: float,
    model_timeout: float,
    chain: int,
    *,
    margin: float | None = None,
) -> AttemptPlan | None:
    """The plan for the next attempt, or None when what is left cannot hold one."""
    if margin is None:
        margin = min(LITELLM_MARGIN_SECONDS, model_timeout / 10)
    chain = max(1, chain)
    per_model = min(model_timeout, (remaining - margin) / chain)
    if per_model <= 0:
        return None
    return AttemptPlan(
        gateway_timeout=min(remaining, per_model * chain + margin),
        upstream_timeout=round(per_model, 3),
    )
