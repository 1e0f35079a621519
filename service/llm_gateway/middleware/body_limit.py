"""Bodies over MAX_BODY_BYTES get 413 before they are read: by Content-Length, or by counting."""

from __future__ import annotations

from starlette.exceptions import HTTPException

from llm_gateway.errors import ClientError, PayloadTooLarge
from llm_gateway.middleware.asgi import (
    ASGIApp,
    Message,
    Receive,
    ResponseStartWatch,
    Scope,
    Send,
    header_value,
    send_error,
)


class BodyTooLarge(HTTPException):
    """Raised from `receive` mid-body. An HTTPException, because FastAPI's body parser passes
    those through unchanged (any other exception it would turn into a 400)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, detail=_message(limit))


def _message(limit: int) -> str:
    return f"Request body exceeds the {limit}-byte limit (MAX_BODY_BYTES); send a smaller body"


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.limit = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = header_value(scope, b"content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                await send_error(send, ClientError("Content-Length is not a number"), scope)
                return
            if length > self.limit:
                await send_error(send, _too_large(self.limit), scope)
                return
            await self.app(scope, receive, send)
            return

        received = 0
        limit = self.limit
        watched_send = ResponseStartWatch(send)

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        try:
            await self.app(scope, counting_receive, watched_send)
        except BodyTooLarge:
            if watched_send.started:
                raise
            await send_error(send, _too_large(limit), scope)


def _too_large(limit: int) -> PayloadTooLarge:
    # The rest of the body is unread: the connection cannot be reused.
    return PayloadTooLarge(_message(limit), headers={"Connection": "close"})
