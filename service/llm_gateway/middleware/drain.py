"""Counts in-flight requests; while draining, answers with Connection: close; once the drain is
over, turns new work away politely (see drain_state.py for why a drain still serves)."""

from __future__ import annotations

from llm_gateway.drain_state import DrainController
from llm_gateway.errors import ServiceDraining
from llm_gateway.middleware.asgi import ASGIApp, Message, Receive, Scope, Send, send_error
from llm_gateway.probes import PROBE_PATHS

# Probes must keep answering during a drain (readiness says 503 by itself) and are not "work".
UNTRACKED_PATHS = frozenset(PROBE_PATHS)


class DrainMiddleware:
    def __init__(self, app: ASGIApp, *, drain: DrainController) -> None:
        self.app = app
        self.drain = drain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNTRACKED_PATHS:
            await self.app(scope, receive, send)
            return
        drain = self.drain
        if drain.closed:
            await send_error(send, ServiceDraining(retry_after=1), scope)
            return

        async def send_closing_when_draining(message: Message) -> None:
            # A keep-alive client must not send its next request down a closing worker.
            if message["type"] == "http.response.start" and drain.draining:
                message["headers"] = [
                    *(h for h in message.get("headers", ()) if h[0].lower() != b"connection"),
                    (b"connection", b"close"),
                ]
            await send(message)

        drain.request_started()
        try:
            await self.app(scope, receive, send_closing_when_draining)
        finally:
            drain.request_finished(scope["path"])
