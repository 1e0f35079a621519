"""Prometheus scrape endpoint (merged across gunicorn workers)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from llm_gateway.observability.metrics import Metrics

router = APIRouter(tags=["metrics"])


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    registry: Metrics = request.app.state.metrics
    body, content_type = registry.render()
    return Response(body, media_type=content_type)
