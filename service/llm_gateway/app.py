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

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from opentelemetry.sdk.trace import SpanProcessor

from llm_gateway import __version__
from llm_gateway.api import errors as error_handlers
from llm_gateway.api import health as health_routes
from llm_gateway.api import metrics as metrics_routes
from llm_gateway.client_address import ClientAddressResolver
from llm_gateway.health import HealthChecker
from llm_gateway.lifecycle import DrainController
from llm_gateway.middleware.access_log import AccessLogMiddleware
from llm_gateway.middleware.body_limit import BodyLimitMiddleware
from llm_gateway.middleware.drain import DrainMiddleware
from llm_gateway.middleware.errors import UnexpectedErrorMiddleware
from llm_gateway.middleware.request_id import RequestIdMiddleware
from llm_gateway.observability.metrics import Metrics
from llm_gateway.observability.telemetry import UNTRACED_PATHS, Telemetry, build_telemetry
from llm_gateway.settings import ConfigurationError, Settings, development_secret, load_settings

log = logging.getLogger("llm_gateway.app")


@dataclass
class AppOverrides:
    """Injection points for tests; production passes nothing."""

    span_processors: tuple[SpanProcessor, ...] = ()
    extra_checks: dict[str, object] = field(default_factory=dict)


def _development_defaults(settings: Settings) -> Settings:
    if settings.jwt_secret_key is not None:
        return settings
    if not settings.is_development:
        raise ConfigurationError(["JWT_SECRET_KEY must be set and different from default"])
    from pydantic import SecretStr

    log.warning(
        "development_jwt_secret_generated",
        extra={
            "detail": "ENVIRONMENT=development and no JWT_SECRET_KEY: tokens are signed with "
            "a random key that dies with this process"
        },
    )
    return settings.model_copy(update={"jwt_secret_key": SecretStr(development_secret())})


def create_app(settings: Settings | None = None, overrides: AppOverrides | None = None) -> FastAPI:
    if settings is None:
        settings = load_settings()
    settings = _development_defaults(settings)
    overrides = overrides or AppOverrides()

    drain = DrainController()
    metrics = Metrics() if settings.metrics_enabled else None
    telemetry: Telemetry | None = (
        build_telemetry(settings, overrides.span_processors) if settings.tracing_enabled else None
    )
    client_address = ClientAddressResolver(settings.trusted_proxies)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        started = time.monotonic()
        async with AsyncExitStack():
            app.state.health = HealthChecker(
                {},
                timeout=settings.health_check_timeout,
                ttl=settings.health_cache_ttl,
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
            drain.begin("lifespan_shutdown")
        if telemetry is not None:
            flushed = telemetry.shutdown(settings.shutdown_flush_timeout)
            log.info("telemetry_flushed", extra={"complete": flushed})
        log.info("clients_closed")
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
    )
    app.state.settings = settings
    app.state.drain = drain
    app.state.metrics = metrics
    app.state.readiness_checks = list(settings.readiness_checks)
    app.state.health = HealthChecker({}, timeout=settings.health_check_timeout, ttl=0)

    error_handlers.install(app)
    app.include_router(health_routes.router)
    if metrics is not None:
        app.include_router(metrics_routes.router)

    # Added innermost first: the last one added is the outermost layer.
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=settings.cors_allow_credentials,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )
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

    if telemetry is not None:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(
            app,
            tracer_provider=telemetry.provider,
            excluded_urls=",".join(UNTRACED_PATHS),
            exclude_spans=["receive", "send"],
        )
    app.state.telemetry = telemetry
    app.state.client_address = client_address
    return app
