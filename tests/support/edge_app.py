"""The real app plus a few test-only routes that exercise the middleware chain."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from fastapi import FastAPI, Request
from opentelemetry.sdk.trace import SpanProcessor

from llm_gateway.api.deps import LimitedPrincipal
from llm_gateway.app import AppOverrides, create_app
from llm_gateway.settings import Settings


def edge_app(settings: Settings, span_processors: tuple[SpanProcessor, ...] = ()) -> FastAPI:
    app = create_app(settings, AppOverrides(span_processors=span_processors))
    app.state.echo_calls = 0

    @app.post("/test/echo")
    async def echo(request: Request) -> dict[str, Any]:
        app.state.echo_calls += 1
        body = await request.body()
        return {"received": len(body)}

    @app.get("/test/limited")
    async def limited(principal: LimitedPrincipal) -> dict[str, Any]:
        # The LLM routes' own dependency (auth, then the per-IP and per-caller limits), without
        # an upstream behind it; the pid tells which worker answered.
        return {"pid": os.getpid(), "subject": principal.subject}

    @app.get("/test/slow")
    async def slow(seconds: float) -> dict[str, float]:
        await asyncio.sleep(seconds)
        return {"slept": seconds}

    @app.get("/test/crash")
    @app.get("/v1/test/crash")  # an OpenAI-compatible path: errors in OpenAI's shape
    async def crash() -> None:
        raise RuntimeError("simulated bug with secret-looking detail")

    return app
