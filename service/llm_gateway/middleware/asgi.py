"""Small ASGI helpers shared by the pure middleware classes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from llm_gateway.errors import GatewayError, error_body, error_bytes

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def header_value(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value)
    return None


async def send_error(send: Send, error: GatewayError, request_id: str | None) -> None:
    """Answer with the standard error body; for layers outside the router."""
    body = error_bytes(
        error_body(
            error.error_name,
            error.message,
            request_id=request_id,
            incident_id=error.incident_id,
            extra=error.body_fields(),
        )
    )
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    headers.extend((k.lower().encode(), v.encode()) for k, v in error.response_headers().items())
    await send({"type": "http.response.start", "status": error.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})
