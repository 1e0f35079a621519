"""The one mapping from exceptions to HTTP answers, installed on the app.

The body's shape depends on the path (error_shapes.py): OpenAI's on `/v1/*`, so the OpenAI SDK
raises its own exception classes and callers can branch on `error.code`; the flat shape of
`llm_gateway.errors.error_body` everywhere else.

FastAPI's own validation errors (pydantic, malformed JSON) become `InvalidRequest` (400, as
OpenAI's API answers an invalid parameter) and take the same path as the guard's.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from llm_gateway.api.responses import JSONResponse
from llm_gateway.error_shapes import error_body_for, speaks_openai
from llm_gateway.errors import (
    AuthenticationFailed,
    ClientError,
    GatewayError,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    error_body,
    new_incident_id,
)

log = logging.getLogger("llm_gateway.errors")

_HTTP_ERROR_NAMES = {
    400: "ClientError",
    401: "AuthenticationFailed",
    403: "PermissionDenied",
    404: "NotFound",
    405: "MethodNotAllowed",
    413: "PayloadTooLarge",
    415: "UnsupportedMediaType",
    429: "RateLimited",
}
# Starlette's own HTTP errors (404 no such route, 405...) as the tree's classes, for /v1 bodies.
_HTTP_ERROR_CLASSES: dict[int, type[ClientError]] = {
    401: AuthenticationFailed,
    403: PermissionDenied,
    404: NotFound,
    413: PayloadTooLarge,
    429: RateLimited,
}


def _request_id(request: Request) -> str | None:
    request_id = request.scope.get("state", {}).get("request_id")
    return str(request_id) if request_id is not None else None


async def _gateway_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, GatewayError)
    incident_id = exc.incident_id = exc.incident_id or new_incident_id()
    body = error_body_for(request.url.path, exc, request_id=_request_id(request))
    fields: dict[str, Any] = {
        "error": exc.error_name,
        "status": exc.status_code,
        "incident_id": incident_id,
        "error_message": exc.message,
        "path": request.url.path,
    }
    if exc.status_code >= 500:
        log.error("request_failed", extra=fields)
    else:
        log.info("request_refused", extra=fields)
    return JSONResponse(body, status_code=exc.status_code, headers=exc.response_headers())


def invalid_request(exc: RequestValidationError) -> InvalidRequest:
    """FastAPI's validation error as the gateway's: one message a person can act on, and the
    fields at fault (none for a body that is not JSON at all: FastAPI reports the byte offset
    where a field name would be)."""
    errors = exc.errors()
    for item in errors:
        if item.get("type") == "json_invalid":
            location = item.get("loc", ())
            position = location[-1] if len(location) > 1 else None
            reason = (item.get("ctx") or {}).get("error") or item.get("msg")
            where = f"at character {position}: " if isinstance(position, int) else ""
            return InvalidRequest(f"The request body is not valid JSON ({where}{reason})")
    problems = []
    for item in errors:
        location = [str(part) for part in item.get("loc", ()) if part != "body"]
        problems.append({"field": ".".join(location) or "body", "message": item.get("msg")})
    summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
    return InvalidRequest(
        f"The request body failed validation: {summary}", extra={"fields": problems}
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return await _gateway_error(request, invalid_request(exc))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    message = str(exc.detail)
    request_id = _request_id(request)
    if speaks_openai(request.url.path):
        as_gateway_error = _HTTP_ERROR_CLASSES.get(exc.status_code, ClientError)(message)
        body = error_body_for(request.url.path, as_gateway_error, request_id=request_id)
    else:
        name = _HTTP_ERROR_NAMES.get(exc.status_code, "HTTPError")
        body = error_body(name, message, request_id=request_id)
    headers = dict(exc.headers or {})
    if exc.status_code == 413:
        headers["Connection"] = "close"
    return JSONResponse(body, status_code=exc.status_code, headers=headers)


def install(app: FastAPI) -> None:
    app.add_exception_handler(GatewayError, _gateway_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
