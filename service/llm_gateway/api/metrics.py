"""Prometheus scrape endpoint (merged across gunicorn workers)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from llm_gateway.api.deps import AppServices

router = APIRouter(tags=["metrics"])


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def metrics(parts: AppServices) -> Response:
    # Routed only when METRICS_ENABLED (create_app), so the registry is there.
    assert parts.metrics is not None
    body, content_type = parts.metrics.render()
    return Response(body, media_type=content_type)
