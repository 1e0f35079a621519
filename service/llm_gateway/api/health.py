"""Probe routes: liveness answers from the process alone; readiness checks dependencies."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from llm_gateway.api.deps import AppServices, services
from llm_gateway.api.responses import JSONResponse
from llm_gateway.errors import utc_now_iso

router = APIRouter(tags=["health"])

# Readiness is polled every few seconds by every kubelet: never let it reuse a result that is
# older than one probe period, whatever the detailed view's TTL is.
READINESS_MAX_AGE = 2.0


@router.get("/livez", summary="Liveness: the process answers", response_class=JSONResponse)
async def livez() -> dict[str, str]:
    return {"status": "alive", "timestamp": utc_now_iso()}


@router.get("/readyz", summary="Readiness: fit to take traffic")
async def readyz(parts: AppServices, verbose: str | None = None) -> JSONResponse:
    drain, checker = parts.drain, parts.health
    required = parts.settings.readiness_checks
    body: dict[str, Any] = {"status": "ready", "timestamp": utc_now_iso()}
    status_code = 200
    if drain.draining:
        body["status"] = "draining"
        status_code = 503
    results = await checker.run(required, max_age=READINESS_MAX_AGE) if required else {}
    if status_code == 200 and any(r.status == "down" for r in results.values()):
        body["status"] = "not_ready"
        status_code = 503
    if verbose is not None:
        body["checks"] = {name: result.as_dict() for name, result in results.items()}
        body["checks"]["drain"] = {
            "status": "down" if drain.draining else "up",
            "in_flight": drain.in_flight,
        }
    return JSONResponse(body, status_code=status_code)


async def detailed_health(request: Request) -> JSONResponse:
    results = await services(request).health.run()
    healthy = all(result.status == "up" for result in results.values())
    body = {
        "status": "healthy" if healthy else "degraded",
        "timestamp": utc_now_iso(),
        "checks": {name: result.as_dict() for name, result in results.items()},
    }
    return JSONResponse(body, status_code=200 if healthy else 503)
