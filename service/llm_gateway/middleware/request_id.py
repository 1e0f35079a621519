"""Outermost layer: every request gets an id, every response (even 401/413/429/503) returns it."""

from __future__ import annotations

from opentelemetry import trace

from llm_gateway.middleware.asgi import ASGIApp, Message, Receive, Scope, Send, header_value
from llm_gateway.observability.context import accept_request_id, request_id_var

REQUEST_ID_HEADER = b"x-request-id"


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = accept_request_id(header_value(scope, REQUEST_ID_HEADER))
        scope.setdefault("state", {})["request_id"] = request_id
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attribute("request_id", request_id)
        encoded = request_id.encode()

        async def send_with_request_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v) for k, v in message.get("headers", ()) if k.lower() != REQUEST_ID_HEADER
                ]
                headers.append((REQUEST_ID_HEADER, encoded))
                message["headers"] = headers
            await send(message)

        token = request_id_var.set(request_id)
        try:
            await self.app(scope, receive, send_with_request_id)
        finally:
            request_id_var.reset(token)
