"""The two shapes an error body takes, and which one a path gets.

`/llm/generate`, `/generate` and every other path keep the seeds' flat shape
(`{"error": "<Class>", "message", "incident_id", "timestamp", "request_id", ...}`). The
OpenAI-compatible paths (`/v1/*`) answer in OpenAI's shape, so the OpenAI SDK raises its own
exception class (by status) and callers can branch on `error.code`::

    {"error": {"message", "type", "param", "code", "incident_id", "request_id"}}

The in-band error event of a stream on /v1 carries the same object. Every layer that answers an
error (the exception handlers, the middleware that answer early, the SSE writer) builds its body
here, so no path can speak the wrong dialect.
"""

from __future__ import annotations

from typing import Any

from llm_gateway.errors import GatewayError, error_body, new_incident_id

OPENAI_PREFIX = "/v1/"


def speaks_openai(path: str) -> bool:
    return path.startswith(OPENAI_PREFIX)


def openai_error(exc: GatewayError, *, request_id: str | None, incident_id: str) -> dict[str, Any]:
    """The `error` object of OpenAI's shape (also the payload of an in-band stream error)."""
    fields = exc.extra.get("fields") or []
    param = fields[0].get("field") if fields and isinstance(fields[0], dict) else None
    return {
        "message": exc.message,
        "type": exc.openai_type,
        "param": param,
        "code": exc.code,
        "incident_id": incident_id,
        "request_id": request_id,
    }


def error_body_for(path: str, exc: GatewayError, *, request_id: str | None) -> dict[str, Any]:
    """The body answering `exc` on `path`; the incident id is the exception's when it has one."""
    incident_id = exc.incident_id or new_incident_id()
    if speaks_openai(path):
        return {"error": openai_error(exc, request_id=request_id, incident_id=incident_id)}
    return error_body(
        exc.error_name,
        exc.message,
        request_id=request_id,
        incident_id=incident_id,
        extra=exc.body_fields(),
    )
