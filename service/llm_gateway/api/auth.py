"""`/auth` routes: password login for a bearer token, and who-am-I."""

from __future__ import annotations

import logging
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from llm_gateway.api.deps import AppServices, CurrentPrincipal, client_address
from llm_gateway.api.responses import JSONResponse
from llm_gateway.errors import AuthenticationFailed

log = logging.getLogger(__name__)

router = APIRouter(prefix="/auth", tags=["auth"])

INVALID_LOGIN = "Invalid username or password"


class LoginRequest(BaseModel):
    # Bounded: the username becomes a rate-limit key and a log field.
    username: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=1, max_length=1024)


class UserView(BaseModel):
    username: str
    role: Literal["user", "admin"]


class LoginResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - OAuth2 token type, not a secret
    expires_in: int
    user: UserView


class MeResponse(BaseModel):
    username: str
    role: Literal["user", "admin"]
    kind: Literal["user", "api_key"]


@router.post(
    "/login",
    response_model=LoginResponse,
    response_class=JSONResponse,
    summary="Exchange a username and password for a bearer token",
    responses={401: {"description": "Invalid username or password"}, 429: {}},
)
async def login(
    request: Request,
    body: LoginRequest,
    address: Annotated[str, Depends(client_address)],
    parts: AppServices,
) -> LoginResponse:
    limiter, users, tokens = parts.rate_limiter, parts.users, parts.tokens
    # Before the password is looked at: a refused attempt costs no argon2 work and tells nothing.
    await limiter.check_login(address, body.username)
    principal = await users.authenticate(body.username, body.password)
    if principal is None:
        log.info("login_failed", extra={"username": body.username, "client": address})
        # Same answer for an unknown user and a wrong password: no account enumeration.
        raise AuthenticationFailed(INVALID_LOGIN)
    issued = tokens.issue(principal)
    request.state.user = principal.subject
    log.info(
        "login_succeeded",
        extra={"username": principal.subject, "role": principal.role, "client": address},
    )
    return LoginResponse(
        access_token=issued.access_token,
        expires_in=issued.expires_in,
        user=UserView(username=principal.subject, role=principal.role),
    )


@router.get(
    "/me",
    response_model=MeResponse,
    response_class=JSONResponse,
    summary="The caller, as the gateway sees them",
)
async def me(principal: CurrentPrincipal) -> MeResponse:
    return MeResponse(username=principal.subject, role=principal.role, kind=principal.kind)
