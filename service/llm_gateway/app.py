"""The app factory: `create_app(settings)` builds the app; its lifespan owns every client.

gunicorn loads `llm_gateway.app:create_app()` in each worker after fork. Nothing here does I/O
at import time; the parts are built and opened in the lifespan (wiring.py) and closed there, in
reverse order.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from llm_gateway import __version__
from llm_gateway.api import admin as admin_routes
from llm_gateway.api import auth as auth_routes
from llm_gateway.api import errors as error_handlers
from llm_gateway.api import health as health_routes
from llm_gateway.api import llm as llm_routes
from llm_gateway.api import metrics as metrics_routes
from llm_gateway.api import openai as openai_routes
from llm_gateway.api.aliases import add_legacy_aliases
from llm_gateway.api.deps import install_services
from llm_gateway.middleware.stack import add_middleware_stack
from llm_gateway.settings import Settings, load_settings
from llm_gateway.wiring import AppOverrides, Edge, build_edge, open_services

log = logging.getLogger("llm_gateway.app")

__all__ = ["AppOverrides", "create_app"]


def create_app(settings: Settings | None = None, overrides: AppOverrides | None = None) -> FastAPI:
    if settings is None:
        settings = load_settings()
    overrides = overrides or AppOverrides()
    edge = build_edge(settings, overrides)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        started = time.monotonic()
        async with AsyncExitStack() as stack:
            install_services(app, await open_services(settings, edge, overrides, stack))
            log.info(
                "application_started",
                extra={
                    "startup_seconds": round(time.monotonic() - started, 3),
                    "version": __version__,
                },
            )
            yield
            shutdown_started = time.monotonic()
            edge.drain.close("lifespan_shutdown")
        log.info("clients_closed")
        _finish_shutdown(settings, edge, shutdown_started)

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
    if edge.metrics is not None:
        routers.append(metrics_routes.router)
    for router in routers:
        app.include_router(router)
    add_legacy_aliases(app, routers)
    add_middleware_stack(
        app,
        settings,
        drain=edge.drain,
        metrics=edge.metrics,
        client_address=edge.client_address,
        telemetry=edge.telemetry,
    )
    return app


def _finish_shutdown(settings: Settings, edge: Edge, shutdown_started: float) -> None:
    if edge.telemetry is not None:
        flushed = edge.telemetry.shutdown(settings.shutdown_flush_timeout)
        log.info("telemetry_flushed", extra={"complete": flushed})
    log.info(
        "graceful_shutdown_completed",
        extra={
            "duration_seconds": round(
                time.monotonic() - (edge.drain.drain_started_at or shutdown_started), 3
            )
        },
    )
