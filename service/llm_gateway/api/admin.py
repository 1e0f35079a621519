"""Admin-only views: dependency health and the guard's security window."""

from __future__ import annotations

from fastapi import APIRouter, Request

from llm_gateway.api.deps import AdminPrincipal, AppServices
from llm_gateway.api.health import detailed_health
from llm_gateway.api.responses import JSONResponse
from llm_gateway.errors import utc_now_iso

router = APIRouter(tags=["admin"])


@router.get("/health/detailed", summary="Every dependency, checked concurrently (admin)")
async def health_detailed(request: Request, principal: AdminPrincipal) -> JSONResponse:
    return await detailed_health(request)


@router.get("/admin/security", summary="Guard refusals and circuit states of this worker (admin)")
async def security_view(parts: AppServices, principal: AdminPrincipal) -> JSONResponse:
    monitor, breakers, settings = parts.security_monitor, parts.breakers, parts.settings
    return JSONResponse(
        {
            "timestamp": utc_now_iso(),
            "guard_enabled": settings.guard_enabled,
            "rate_limit_enabled": settings.rate_limit_enabled,
            "guard": monitor.snapshot(),
            "circuit_breakers": breakers.snapshot(),
            "note": "per worker process; fleet-wide counts are on /metrics "
            "(prompt_rejections_total, rate_limited_total)",
        }
    )
