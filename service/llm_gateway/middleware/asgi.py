"""Small ASGI helpers shared by the pure middleware classes."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llm_gateway.error_shapes import error_body_for
from llm_gateway.errors import GatewayError, error_bytes

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


async def send_error(send: Send, error: GatewayError, scope: Scope) -> None:
    """Answer with the error body `scope`'s path speaks; for layers outside the router."""
    body = error_bytes(
        error_body_for(
            scope.get("path", ""), error, request_id=scope.get("state", {}).get("request_id")
        )
    )
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    headers.extend((k.lower().encode(), v.encode()) for k, v in error.response_headers().items())
    await send({"type": "http.response.start", "status": error.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})
