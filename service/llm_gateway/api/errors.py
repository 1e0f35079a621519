"""The one mapping from exceptions to HTTP answers, installed on the app.

Every error body has the flat shape of `llm_gateway.errors.error_body`, except where a route
family speaks another API's dialect: on `/v1/*` (the OpenAI-compatible routes) the errors listed
in `_OPENAI_ERROR_TYPES` answer in OpenAI's shape,
`{"error": {"message", "type", "param", "code", "incident_id", "request_id"}}`, so the OpenAI
SDK raises its own `BadRequestError` with the message. Issue 16 moves the rest of the tree there
by extending that table.

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
from llm_gateway.errors import GatewayError, InvalidRequest, error_body, new_incident_id

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
# OpenAI's `error.type` for the errors that already answer in its shape on /v1 (issue 16 adds
# the rest of the tree).
_OPENAI_ERROR_TYPES: dict[type[GatewayError], str] = {InvalidRequest: "invalid_request_error"}
_OPENAI_PREFIX = "/v1/"


def _request_id(request: Request) -> str | None:
    request_id = request.scope.get("state", {}).get("request_id")
    return str(request_id) if request_id is not None else None


def _openai_error_type(request: Request, exc: GatewayError) -> str | None:
    if not request.url.path.startswith(_OPENAI_PREFIX):
        return None
    for kind, error_type in _OPENAI_ERROR_TYPES.items():
        if isinstance(exc, kind):
            return error_type
    return None


def _openai_body(
    exc: GatewayError, error_type: str, *, request_id: str | None, incident_id: str
) -> dict[str, Any]:
    fields = exc.extra.get("fields") or []
    param = fields[0].get("field") if fields else None
    return {
        "error": {
            "message": exc.message,
            "type": error_type,
            "param": param,
            "code": None,
            "incident_id": incident_id,
            "request_id": request_id,
        }
    }


async def _gateway_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, GatewayError)
    incident_id = exc.incident_id or new_incident_id()
    request_id = _request_id(request)
    openai_type = _openai_error_type(request, exc)
    if openai_type is not None:
        body = _openai_body(exc, openai_type, request_id=request_id, incident_id=incident_id)
    else:
        body = error_body(
            exc.error_name,
            exc.message,
            request_id=request_id,
            incident_id=incident_id,
            extra=exc.body_fields(),
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
