"""Small ASGI helpers shared by the pure middleware classes."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llm_gateway.errors import GatewayError, error_body, error_bytes

__all__ = [
    "ASGIApp",
    "Message",
    "Receive",
    "ResponseStartWatch",
    "Scope",
    "Send",
    "header_value",
    "send_error",
]


class ResponseStartWatch:
    """A `send` that notes whether the response has started: once the headers are out, a layer
    that catches an error can no longer answer it with an error body."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)


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
