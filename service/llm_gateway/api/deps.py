"""The routes' one door to the app's parts, and the dependencies they declare: who is calling,
may they, and how often.

The lifespan installs one `Services` container (services.py) on the app; this module is its
only reader. `services(request)` is a plain call for the hot paths (a FastAPI dependency costs a
solving pass per request); `AppServices` is the same as a declared dependency. Probe and metrics
routes need no credentials and never count against a limit.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI, Request, Response

from llm_gateway.auth.principal import Principal
from llm_gateway.errors import PermissionDenied
from llm_gateway.observability.context import user_var
from llm_gateway.services import Services


def install_services(app: FastAPI, built: Services) -> None:
    """The lifespan's call once every part is open."""
    app.state.services = built


def started_services(app: object) -> Services | None:
    """The app's Services once its lifespan has built them; None before (or for another app)."""
    built = getattr(getattr(app, "state", None), "services", None)
    return built if isinstance(built, Services) else None


def services(request: Request) -> Services:
    built: Services = request.app.state.services
    return built


# `async def` on purpose: FastAPI runs plain `def` dependencies in a worker thread.
async def get_services(request: Request) -> Services:
    return services(request)


AppServices = Annotated[Services, Depends(get_services)]


async def client_address(request: Request) -> str:
    """The client's address per TRUSTED_PROXIES (never X-Forwarded-For read blindly)."""
    return services(request).client_address.resolve(request.scope)


def authenticate(request: Request) -> Principal:
    """The caller, from Authorization or X-Api-Key; raises AuthenticationFailed."""
    principal = services(request).authenticator.authenticate(
        request.headers.get("authorization"), request.headers.get("x-api-key")
    )
    # The access log reads scope["state"]["user"]; the JSON logger reads user_var. The request
    # runs in its own task, so the context variable cannot leak into another request.
    request.state.user = principal.subject
    user_var.set(principal.subject)
    return principal


async def get_principal(request: Request) -> Principal:
    return authenticate(request)


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


async def get_admin_principal(principal: CurrentPrincipal) -> Principal:
    if not principal.is_admin:
        raise PermissionDenied("This endpoint needs the admin role")
    return principal


AdminPrincipal = Annotated[Principal, Depends(get_admin_principal)]


# One flat dependency, not one built on CurrentPrincipal: FastAPI's dependency solving costs
# tens of microseconds per level on every request, and this one guards the LLM routes.
async def get_limited_principal(request: Request, response: Response) -> Principal:
    principal = authenticate(request)
    limiter = services(request).rate_limiter
    if not limiter.enabled:
        return principal
    # Per address, then per caller: one call, so a shared store is asked once per request.
    tightest = await limiter.check_request(await client_address(request), principal.limit_key)
    if tightest is not None:
        # Routes that return their own Response (streams) copy these from request.state.
        request.state.rate_limit = tightest
        response.headers.update(tightest.headers())
    return principal


LimitedPrincipal = Annotated[Principal, Depends(get_limited_principal)]
