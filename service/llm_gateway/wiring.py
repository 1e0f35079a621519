"""How the parts are built from Settings and wired to each other; app.py only calls this.

Two steps, because middleware is added before the app starts: `build_edge` makes what the
middleware needs (no I/O), and the lifespan's `open_services` builds everything else, opens the
clients on its exit stack (closed in reverse order) and returns the one `Services` container.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass

import httpx
from opentelemetry.sdk.trace import SpanProcessor

from llm_gateway.auth.api_keys import ApiKeyStore
from llm_gateway.auth.authenticator import Authenticator
from llm_gateway.auth.tokens import TokenService
from llm_gateway.auth.users import UserStore
from llm_gateway.cache.factory import build_response_cache
from llm_gateway.client_address import ClientAddressResolver
from llm_gateway.drain_state import DrainController
from llm_gateway.guard.injection import InjectionDetector
from llm_gateway.guard.policy import GuardLimits, PromptGuard
from llm_gateway.guard.security import SecurityMonitor
from llm_gateway.health import HealthChecker
from llm_gateway.llm.service import LLMService
from llm_gateway.observability.metrics import Metrics
from llm_gateway.observability.telemetry import Telemetry, build_telemetry
from llm_gateway.ratelimit.limiter import RateLimiter
from llm_gateway.resilience.breaker import CircuitBreakerRegistry
from llm_gateway.services import Services
from llm_gateway.settings import Settings, signing_key
from llm_gateway.tracking.factory import build_trace_tracker
from llm_gateway.upstream.factory import build_litellm_client


@dataclass(frozen=True)
class AppOverrides:
    """Injection points for tests; production passes nothing."""

    span_processors: tuple[SpanProcessor, ...] = ()
    # Replaces the network under the upstream client (e.g. httpx.MockTransport in API tests).
    upstream_transport: httpx.AsyncBaseTransport | None = None


@dataclass(frozen=True, slots=True)
class Edge:
    """What the middleware is given when create_app adds it, before the lifespan runs."""

    drain: DrainController
    metrics: Metrics | None
    telemetry: Telemetry | None
    client_address: ClientAddressResolver


def build_edge(settings: Settings, overrides: AppOverrides) -> Edge:
    return Edge(
        drain=DrainController(),
        metrics=Metrics() if settings.metrics_enabled else None,
        telemetry=(
            build_telemetry(settings, overrides.span_processors)
            if settings.tracing_enabled
            else None
        ),
        client_address=ClientAddressResolver(settings.trusted_proxies),
    )


def build_guard(
    settings: Settings, monitor: SecurityMonitor, metrics: Metrics | None
) -> PromptGuard:
    return PromptGuard(
        GuardLimits(
            settings.prompt_max_chars, settings.max_tokens_limit, settings.model_name_pattern
        ),
        detector=(
            InjectionDetector.with_patterns_file(settings.injection_patterns_file)
            if settings.guard_enabled
            else None
        ),
        monitor=monitor,
        metrics=metrics,
    )


def build_breakers(settings: Settings, metrics: Metrics | None) -> CircuitBreakerRegistry:
    return CircuitBreakerRegistry(
        settings.breaker_failure_threshold,
        settings.breaker_recovery_seconds,
        metrics=metrics,
        # Every worker's circuits for /health/detailed, from the multiprocess metric files.
        worker_states=(
            (lambda: metrics.live_gauge_by_worker("circuit_breaker_state"))
            if metrics is not None and metrics.multiprocess
            else None
        ),
    )


async def open_services(
    settings: Settings, edge: Edge, overrides: AppOverrides, stack: AsyncExitStack
) -> Services:
    """Every part, built and opened; each one with a health check registers it here."""
    metrics = edge.metrics
    # The parts that only read configuration first: a bad users file opens no client.
    tokens = TokenService(
        signing_key(settings),
        settings.jwt_algorithm,
        settings.jwt_issuer,
        settings.jwt_audience,
        settings.jwt_expires_seconds,
    )
    users = UserStore.from_settings(settings)
    authenticator = Authenticator(tokens, ApiKeyStore.from_file(settings.api_keys_file))
    security_monitor = SecurityMonitor()
    guard = build_guard(settings, security_monitor, metrics)
    breakers = build_breakers(settings, metrics)
    health = HealthChecker(timeout=settings.health_check_timeout, ttl=settings.health_cache_ttl)

    upstream = build_litellm_client(
        settings,
        metrics=metrics,
        tracer_provider=edge.telemetry.provider if edge.telemetry is not None else None,
        breakers=breakers,
        transport=overrides.upstream_transport,
    )
    stack.push_async_callback(upstream.aclose)
    health.register("litellm", upstream.health)
    health.register("circuit_breaker", breakers.health_check, cacheable=False)
    rate_limiter = RateLimiter.from_settings(settings, metrics)
    await rate_limiter.open()
    stack.push_async_callback(rate_limiter.close)
    if rate_limiter.enabled:
        health.register("rate_limit_storage", rate_limiter.health, cacheable=False)
    cache = build_response_cache(settings, metrics=metrics, upstream=upstream)
    if cache is not None:
        await cache.open()
        stack.push_async_callback(cache.close)
        health.register("qdrant", cache.health)
    tracker = build_trace_tracker(settings, metrics)
    if tracker is not None:
        await tracker.start()
        stack.push_async_callback(tracker.close, settings.shutdown_flush_timeout)
        health.register("mlflow", tracker.health_details)

    llm = LLMService(
        upstream=upstream,
        guard=guard,
        cache=cache,
        tracker=tracker,
        cache_scope_mode=settings.cache_scope,
        request_deadline=settings.request_deadline,
        metrics=metrics,
    )
    return Services(
        settings=settings,
        drain=edge.drain,
        metrics=metrics,
        client_address=edge.client_address,
        tokens=tokens,
        users=users,
        authenticator=authenticator,
        rate_limiter=rate_limiter,
        security_monitor=security_monitor,
        breakers=breakers,
        llm=llm,
        health=health,
    )
