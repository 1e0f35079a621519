"""FastAPI dependency aliases the routes declare: who is calling, and may they, and how often.

The app keeps its shared objects on `app.state` (built in create_app / the lifespan):
`authenticator` (Authenticator), `rate_limiter` (RateLimiter) and `client_address`
(ClientAddressResolver). Probe and metrics routes depend on none of these, so they never need
credentials and never count against a limit.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Response

from llm_gateway.auth.authenticator import Authenticator
from llm_gateway.auth.principal import Principal
from llm_gateway.client_address import ClientAddressResolver
from llm_gateway.errors import PermissionDenied
from llm_gateway.observability.context import user_var
from llm_gateway.ratelimit.limiter import RateLimiter


async def client_address(request: Request) -> str:
    """The client's address per TRUSTED_PROXIES (never X-Forwarded-For read blindly)."""
    resolver: ClientAddressResolver = request.app.state.client_address
    return resolver.resolve(request.scope)


def authenticate(request: Request) -> Principal:
    """The caller, from Authorization or X-Api-Key; raises AuthenticationFailed."""
    authenticator: Authenticator = request.app.state.authenticator
    principal = authenticator.authenticate(
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
    limiter: RateLimiter = request.app.state.rate_limiter
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
