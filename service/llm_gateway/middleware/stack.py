"""The middleware stack, in its one order: CORS outermost, then tracing, request id, access log,
the error layer, drain and the body limit innermost."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from llm_gateway.client_address import ClientAddressResolver
from llm_gateway.drain_state import DrainController
from llm_gateway.middleware.access_log import AccessLogMiddleware
from llm_gateway.middleware.body_limit import BodyLimitMiddleware
from llm_gateway.middleware.drain import DrainMiddleware
from llm_gateway.middleware.errors import UnexpectedErrorMiddleware
from llm_gateway.middleware.request_id import RequestIdMiddleware
from llm_gateway.middleware.trace_context import TraceContextMiddleware
from llm_gateway.observability.metrics import Metrics
from llm_gateway.observability.telemetry import Telemetry
from llm_gateway.probes import PROBE_PATHS
from llm_gateway.settings import Settings


def add_middleware_stack(
    app: FastAPI,
    settings: Settings,
    *,
    drain: DrainController,
    metrics: Metrics | None,
    client_address: ClientAddressResolver,
    telemetry: Telemetry | None,
) -> None:
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
