"""Anything the routes did not expect becomes a 500 with an incident id, logged with traceback."""

from __future__ import annotations

import logging

from llm_gateway.errors import GatewayError, new_incident_id
from llm_gateway.middleware.asgi import (
    ASGIApp,
    Receive,
    ResponseStartWatch,
    Scope,
    Send,
    send_error,
)

log = logging.getLogger("llm_gateway.errors")


class UnexpectedErrorMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        watched_send = ResponseStartWatch(send)
        try:
            await self.app(scope, receive, watched_send)
        except Exception:
            incident_id = new_incident_id()
            log.error(
                "unhandled_exception",
                exc_info=True,
                extra={
                    "incident_id": incident_id,
                    "method": scope.get("method"),
                    "path": scope.get("path"),
                    "response_started": watched_send.started,
                },
            )
            if watched_send.started:
                # Headers are gone; the only honest signal left is an aborted connection.
                raise
            error = GatewayError(incident_id=incident_id)
            await send_error(send, error, scope)
