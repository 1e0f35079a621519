"""The one mapping from exceptions to HTTP answers, installed on the app."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from llm_gateway.api.responses import JSONResponse
from llm_gateway.errors import GatewayError, error_body, new_incident_id

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


def _request_id(request: Request) -> str | None:
    request_id = request.scope.get("state", {}).get("request_id")
    return str(request_id) if request_id is not None else None


async def _gateway_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, GatewayError)
    incident_id = exc.extra.pop("incident_id", None) or new_incident_id()
    body = error_body(
        exc.error_name,
        exc.message,
        request_id=_request_id(request),
        incident_id=incident_id,
        extra=exc.extra,
    )
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


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for item in exc.errors():
        location = [str(part) for part in item.get("loc", ()) if part != "body"]
        problems.append({"field": ".".join(location) or "body", "message": item.get("msg")})
    summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
    body = error_body(
        "InvalidRequest",
        f"The request body failed validation: {summary}",
        request_id=_request_id(request),
        extra={"fields": problems},
    )
    log.info(
        "request_refused",
        extra={"error": "InvalidRequest", "status": 422, "incident_id": body["incident_id"]},
    )
    return JSONResponse(body, status_code=422)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    name = _HTTP_ERROR_NAMES.get(exc.status_code, "HTTPError")
    body = error_body(name, str(exc.detail), request_id=_request_id(request))
    headers = dict(exc.headers or {})
    if exc.status_code == 413:
        headers["Connection"] = "close"
    return JSONResponse(body, status_code=exc.status_code, headers=headers)


def install(app: FastAPI) -> None:
    app.add_exception_handler(GatewayError, _gateway_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
