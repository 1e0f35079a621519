"""Server-sent events out of an already-open upstream stream.

The stream is opened by the route before this response starts, so everything that can still be
an HTTP status (auth, guard, breaker, retries, time to first token) already was. From the first
byte on, a failure can only be told in band: one `data: {"error": {...}}` event (the shape the
OpenAI SDK raises on) and no `[DONE]`, so no client mistakes a cut answer for a whole one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

import orjson

from llm_gateway.error_shapes import openai_error
from llm_gateway.errors import GatewayError, new_incident_id
from llm_gateway.middleware.asgi import Receive, Scope, Send

log = logging.getLogger(__name__)

SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    # Tells nginx-style ingresses not to buffer the stream.
    (b"x-accel-buffering", b"no"),
]


def error_event(exc: BaseException, *, request_id: str | None, incident_id: str) -> bytes:
    """The in-band error: the `error` object of OpenAI's shape, which the OpenAI SDK raises on."""
    error = exc if isinstance(exc, GatewayError) else GatewayError("The gateway failed mid-stream")
    payload = {"error": openai_error(error, request_id=request_id, incident_id=incident_id)}
    return b"data: " + orjson.dumps(payload) + b"\n\n"


class EventStreamResponse:
    """Forward `events` (already SSE-framed bytes) and exit `call` on every path.

    A client disconnect cancels the forwarding at once (uvicorn would otherwise accept and
    discard writes), so the upstream connection is released instead of reading a whole answer
    nobody will see.
    """

    def __init__(
        self,
        call: AbstractAsyncContextManager[Any],
        events: AsyncIterator[bytes],
        *,
        headers: Mapping[str, str],
        request_id: str | None,
    ) -> None:
        self._call = call
        self._events = events
        extra = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        self._headers = [*SSE_HEADERS, *extra]
        self._request_id = request_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        error: BaseException | None = None
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self._headers})
            forward = asyncio.ensure_future(self._forward(send))
            watch = asyncio.ensure_future(_wait_for_disconnect(receive))
            try:
                await asyncio.wait({forward, watch}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                watch.cancel()
                if not forward.done():
                    forward.cancel()
                    error = ConnectionAbortedError("client disconnected")
                await asyncio.gather(forward, watch, return_exceptions=True)
            if error is None and forward.exception() is not None:
                error = forward.exception()
        finally:
            if error is None:
                await self._call.__aexit__(None, None, None)
            else:
                await self._call.__aexit__(type(error), error, error.__traceback__)

    async def _forward(self, send: Send) -> None:
        try:
            async for event in self._events:
                await send({"type": "http.response.body", "body": event, "more_body": True})
        except Exception as exc:
            incident_id = new_incident_id()
            log.error(
                "stream_interrupted",
                extra={
                    "error": type(exc).__name__,
                    "error_message": str(exc),
                    "incident_id": incident_id,
                },
                exc_info=not isinstance(exc, GatewayError),
            )
            event = error_event(exc, request_id=self._request_id, incident_id=incident_id)
            await send({"type": "http.response.body", "body": event, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            raise
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _wait_for_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
