"""The only wiring module: `create_app(settings)` builds the app; its lifespan owns every client.

gunicorn loads `llm_gateway.app:create_app()` in each worker after fork. Nothing here does I/O
at import time; clients open in the lifespan and close there, in reverse order.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

import httpx
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from opentelemetry.sdk.trace import SpanProcessor

from llm_gateway import __version__
from llm_gateway.api import admin as admin_routes
from llm_gateway.api import auth as auth_routes
from llm_gateway.api import errors as error_handlers
from llm_gateway.api import health as health_routes
from llm_gateway.api import llm as llm_routes
from llm_gateway.api import metrics as metrics_routes
from llm_gateway.api import openai as openai_routes
from llm_gateway.api.aliases import add_legacy_aliases
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
from llm_gateway.health import Check, HealthChecker
from llm_gateway.llm.service import LLMService
from llm_gateway.middleware.access_log import AccessLogMiddleware
from llm_gateway.middleware.body_limit import BodyLimitMiddleware
from llm_gateway.middleware.drain import DrainMiddleware
from llm_gateway.middleware.errors import UnexpectedErrorMiddleware
from llm_gateway.middleware.request_id import RequestIdMiddleware
from llm_gateway.middleware.trace_context import TraceContextMiddleware
from llm_gateway.observability.metrics import Metrics
from llm_gateway.observability.telemetry import Telemetry, build_telemetry
from llm_gateway.probes import PROBE_PATHS
from llm_gateway.ratelimit.limiter import RateLimiter
from llm_gateway.resilience.breaker import CircuitBreakerRegistry
from llm_gateway.settings import Settings, load_settings, signing_key
from llm_gateway.tracking.factory import build_trace_tracker
from llm_gateway.upstream.factory import build_litellm_client

log = logging.getLogger("llm_gateway.app")


@dataclass
class AppOverrides:
    """Injection points for tests; production passes nothing."""

    span_processors: tuple[SpanProcessor, ...] = ()
    extra_checks: dict[str, Check] = field(default_factory=dict)
    # Replaces the network under the upstream client (e.g. httpx.MockTransport in API tests).
    upstream_transport: httpx.AsyncBaseTransport | None = None


def create_app(settings: Settings | None = None, overrides: AppOverrides | None = None) -> FastAPI:
    if settings is None:
        settings = load_settings()
    overrides = overrides or AppOverrides()

    drain = DrainController()
    metrics = Metrics() if settings.metrics_enabled else None
    telemetry: Telemetry | None = (
        build_telemetry(settings, overrides.span_processors) if settings.tracing_enabled else None
    )
    client_address = ClientAddressResolver(settings.trusted_proxies)
    tokens = TokenService(
        signing_key(settings),
        settings.jwt_algorithm,
        settings.jwt_issuer,
        settings.jwt_audience,
        settings.jwt_expires_seconds,
    )
    user_store = UserStore.from_settings(settings)
    authenticator = Authenticator(tokens, ApiKeyStore.from_file(settings.api_keys_file))
    rate_limiter = RateLimiter.from_settings(settings, metrics)
    security_monitor = SecurityMonitor()
    guard = PromptGuard(
        GuardLimits(
            settings.prompt_max_chars, settings.max_tokens_limit, settings.model_name_pattern
        ),
        detector=(
            InjectionDetector.with_patterns_file(settings.injection_patterns_file)
            if settings.guard_enabled
            else None
        ),
        monitor=security_monitor,
        metrics=metrics,
    )
    breakers = CircuitBreakerRegistry(
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

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        started = time.monotonic()
        async with AsyncExitStack() as stack:
            upstream = build_litellm_client(
                settings,
                metrics=metrics,
                tracer_provider=telemetry.provider if telemetry is not None else None,
                breakers=breakers,
                transport=overrides.upstream_transport,
            )
            stack.push_async_callback(upstream.aclose)
            await rate_limiter.open()
            stack.push_async_callback(rate_limiter.close)
            cache = build_response_cache(settings, metrics=metrics, upstream=upstream)
            if cache is not None:
                await cache.open()
                stack.push_async_callback(cache.close)
            tracker = build_trace_tracker(settings, metrics)
            if tracker is not None:
                await tracker.start()
                stack.push_async_callback(tracker.close, settings.shutdown_flush_timeout)
            llm = LLMService(
                upstream=upstream,
                guard=guard,
                cache=cache,
                tracker=tracker,
                cache_scope_mode=settings.cache_scope,
                request_deadline=settings.request_deadline,
                metrics=metrics,
            )
            app.state.llm = llm
            checks: dict[str, Check] = {
                "litellm": Check(upstream.health),
                "circuit_breaker": Check(breakers.health_check, cacheable=False),
            }
            if rate_limiter.enabled:
                checks["rate_limit_storage"] = Check(rate_limiter.health, cacheable=False)
            if cache is not None:
                checks["qdrant"] = Check(cache.health)
            if tracker is not None:
                checks["mlflow"] = Check(tracker.health_details)
            checks.update(overrides.extra_checks)
            app.state.health = HealthChecker(
                checks, timeout=settings.health_check_timeout, ttl=settings.health_cache_ttl
            )
            log.info(
                "application_started",
                extra={
                    "startup_seconds": round(time.monotonic() - started, 3),
                    "version": __version__,
                },
            )
            yield
            shutdown_started = time.monotonic()
            drain.close("lifespan_shutdown")
        log.info("clients_closed")
        if telemetry is not None:
            flushed = telemetry.shutdown(settings.shutdown_flush_timeout)
            log.info("telemetry_flushed", extra={"complete": flushed})
        log.info(
            "graceful_shutdown_completed",
            extra={
                "duration_seconds": round(
                    time.monotonic() - (drain.drain_started_at or shutdown_started), 3
                )
            },
        )

    app = FastAPI(
        title="llm-gateway",
        version=__version__,
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
        # FastAPI's own OpenTelemetry layer would look the global providers up (an os.environ
        # read) on every request; tracing here is the app's own, configured below.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.drain = drain
    app.state.metrics = metrics
    app.state.readiness_checks = list(settings.readiness_checks)
    app.state.health = HealthChecker({}, timeout=settings.health_check_timeout, ttl=0)

    app.state.token_service = tokens
    app.state.user_store = user_store
    app.state.authenticator = authenticator
    app.state.rate_limiter = rate_limiter
    app.state.security_monitor = security_monitor
    app.state.breakers = breakers

    error_handlers.install(app)
    # Routes are matched in this order (twice per request in FastAPI's router): the LLM routes,
    # nearly all of the traffic, first. No two routers share a path, so order changes nothing else.
    routers = [
        openai_routes.router,
        llm_routes.router,
        health_routes.router,
        auth_routes.router,
        admin_routes.router,
    ]
    if metrics is not None:
        routers.append(metrics_routes.router)
    for router in routers:
        app.include_router(router)
    add_legacy_aliases(app, routers)

    # Added innermost first: the last one added is the outermost layer.
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(DrainMiddleware, drain=drain)
    app.add_middleware(UnexpectedErrorMiddleware)
    app.add_middleware(
        AccessLogMiddleware,
        metrics=metrics,
        client_address=client_address,
        enabled=settings.access_log_enabled,
    )
    app.add_middleware(RequestIdMiddleware)

    if telemetry is not None and not telemetry.recording:
        # Spans have nowhere to go: ids for logs and traceparent only (middleware/trace_context).
        app.add_middleware(
            TraceContextMiddleware,
            untraced_paths=PROBE_PATHS,
            id_generator=telemetry.provider.id_generator,
        )
    elif telemetry is not None:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(
            app,
            tracer_provider=telemetry.provider,
            excluded_urls=",".join(PROBE_PATHS),
            exclude_spans=["receive", "send"],
        )
    if settings.cors_origins:
        # Outermost: the answers the inner layers give on their own (drain 503, body-limit 413,
        # the error layer's 500) carry CORS headers too, or a browser sees an opaque failure.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=settings.cors_allow_credentials,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )
    app.state.telemetry = telemetry
    app.state.client_address = client_address
    return app
