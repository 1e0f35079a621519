"""The rules between settings: each reads the validated fields and names its problem, if any.

`Settings` runs them all in one after-validator, so every rule that fails is reported at once
and none depends on the order the fields are declared in. When some fields are invalid on their
own, `load_settings` still runs the rules that do not read them (`unknown`), so one boot reports
every problem.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

from llm_gateway.settings.dependency_fields import DependencyFields
from llm_gateway.settings.service_fields import ServiceFields
from llm_gateway.settings.values import MISSING_JWT_SECRET


@dataclass(frozen=True)
class Rule:
    reads: frozenset[str]
    problem: Callable[[ServiceFields], str | None]


def _signing_key_required(fields: ServiceFields) -> str | None:
    # Development may run without one: a key is generated at start (settings/signing_key.py).
    if fields.jwt_secret_key is None and fields.environment != "development":
        return MISSING_JWT_SECRET
    return None


def _no_wildcard_with_credentials(fields: ServiceFields) -> str | None:
    if fields.cors_allow_credentials and "*" in fields.cors_origins:
        return (
            "CORS_ORIGINS='*' is refused while CORS_ALLOW_CREDENTIALS=true; "
            "list the allowed origins explicitly"
        )
    return None


def _drain_fits_in_graceful_timeout(fields: ServiceFields) -> str | None:
    budget = fields.uvicorn_graceful_timeout + fields.shutdown_flush_timeout
    if budget >= fields.gunicorn_graceful_timeout:
        return (
            f"UVICORN_GRACEFUL_TIMEOUT + SHUTDOWN_FLUSH_TIMEOUT ({budget:g}s) must be below "
            f"GUNICORN_GRACEFUL_TIMEOUT ({fields.gunicorn_graceful_timeout:g}s), or gunicorn "
            "kills workers before they finish draining"
        )
    return None


def _otlp_needs_endpoint(fields: ServiceFields) -> str | None:
    if fields.otel_exporter == "otlp" and not fields.otel_exporter_otlp_endpoint:
        return "OTEL_EXPORTER=otlp needs OTEL_EXPORTER_OTLP_ENDPOINT"
    return None


RULES = (
    Rule(frozenset({"jwt_secret_key", "environment"}), _signing_key_required),
    Rule(frozenset({"cors_allow_credentials", "cors_origins"}), _no_wildcard_with_credentials),
    Rule(
        frozenset(
            {"uvicorn_graceful_timeout", "shutdown_flush_timeout", "gunicorn_graceful_timeout"}
        ),
        _drain_fits_in_graceful_timeout,
    ),
    Rule(frozenset({"otel_exporter", "otel_exporter_otlp_endpoint"}), _otlp_needs_endpoint),
)


def _deadline_holds_a_fallback(fields: DependencyFields) -> str | None:
    # docs/failure-semantics.md: a deadline no longer than one model's timeout leaves LiteLLM no
    # time to fall back, and the gateway would cut it off exactly when it tries to.
    deadline, timeout = fields.request_deadline, fields.upstream_request_timeout
    if deadline <= timeout:
        return (
            f"REQUEST_DEADLINE ({deadline:g}s) must be greater than UPSTREAM_REQUEST_TIMEOUT "
            f"({timeout:g}s), or a timed-out model leaves no time for its fallback; see "
            "docs/failure-semantics.md"
        )
    return None


def _deadline_holds_a_first_token(fields: DependencyFields) -> str | None:
    deadline, first_token = fields.request_deadline, fields.stream_first_token_timeout
    if first_token >= deadline:
        return (
            f"STREAM_FIRST_TOKEN_TIMEOUT ({first_token:g}s) must be below REQUEST_DEADLINE "
            f"({deadline:g}s), or a silent model leaves no time to fail over; see "
            "docs/failure-semantics.md"
        )
    return None


# The time budget's rules read the dependency group only (all its fields are valid by then).
TIME_BUDGET_RULES = (_deadline_holds_a_fallback, _deadline_holds_a_first_token)


def time_budget_problems(fields: DependencyFields) -> list[str]:
    return [problem for rule in TIME_BUDGET_RULES if (problem := rule(fields)) is not None]


def cross_field_problems(fields: ServiceFields, *, unknown: Collection[str] = ()) -> list[str]:
    """Every broken rule, skipping those that read a field in `unknown` (invalid on its own)."""
    problems = []
    for rule in RULES:
        if rule.reads.isdisjoint(unknown) and (problem := rule.problem(fields)) is not None:
            problems.append(problem)
    return problems
