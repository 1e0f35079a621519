"""The original stack's paths, served by the same handlers as their current names.

One table: an alias is a second path for an existing route (same endpoint, methods, response
model), so the two can never drift apart.
"""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute

# (alias, the route it stands for)
LEGACY_ALIASES = (
    ("/generate", "/llm/generate"),
    ("/llm/models", "/models"),
    ("/health", "/livez"),
)


def add_legacy_aliases(app: FastAPI, routers: Iterable[APIRouter]) -> None:
    """Serve every alias of LEGACY_ALIASES with the route of `routers` it stands for."""
    routes = {r.path: r for router in routers for r in router.routes if isinstance(r, APIRoute)}
    for alias, target in LEGACY_ALIASES:
        route = routes[target]
        app.add_api_route(
            alias,
            route.endpoint,
            methods=sorted(route.methods or ()),
            response_model=route.response_model,
            response_class=route.response_class,
            summary=f"{route.summary} (original stack's path)",
            tags=list(route.tags),
        )
