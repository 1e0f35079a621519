"""The port the LiteLLM client speaks to the network through, and what crosses it.

`LiteLLMClient` knows HTTP (status, headers, body bytes) but no HTTP library: an adapter does the
exchange. `AiohttpUpstream` (upstream/aiohttp_upstream.py) is the production one; `HttpxUpstream`
(upstream/http.py) runs over an `httpx.AsyncClient`, for UPSTREAM_TRANSPORT=httpx and for unit
tests that inject an `httpx.MockTransport`.

Adapters raise their library's failures as the `TransportError` family below (the library's
exception is the `__cause__`), so the client and `mapping.error_for_transport` classify a refused
connection, a reset, a stale keep-alive connection or a timeout the same way whichever library
saw it. Adapters apply their connect and per-read timeouts; the client bounds each attempt as a
whole with `asyncio.timeout` (a plain `TimeoutError`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Protocol

# LiteLLM's proxy runs under uvicorn, which closes idle keep-alive connections after 5 s. A
# pooled connection kept longer is dead on the server side, and the next POST written to it fails
# ("Can not write request body"), which was seen opening circuits after quiet periods. Adapters
# drop theirs first.
IDLE_CONNECTION_SECONDS = 4.0
USER_AGENT = "llm-gateway"


class UpstreamResponse:
    """A whole upstream answer. `headers` look names up case-insensitively."""

    __slots__ = ("content", "headers", "status")

    def __init__(self, status: int, headers: Mapping[str, str], content: bytes) -> None:
        self.status = status
        self.headers = headers
        self.content = content


class UpstreamStreamResponse(Protocol):
    """An answer whose body is still arriving; the caller must `aclose()` it on every path."""

    @property
    def status(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    def aiter_bytes(self) -> AsyncIterator[bytes]:
        """The body in chunks as they arrive; raises `TransportError` when the connection breaks."""
        ...

    async def aread(self) -> bytes:
        """The rest of the body (for error answers)."""
        ...

    async def aclose(self) -> None:
        """Release the connection; one not read to the end is closed, not pooled."""
        ...


class Upstream(Protocol):
    """One pooled connection set to the LiteLLM proxy. No I/O before the first call."""

    async def send(
        self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]
    ) -> UpstreamResponse:
        """One exchange, body read to the end. `path` is relative to the base URL."""
        ...

    async def open_stream(
        self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]
    ) -> UpstreamStreamResponse:
        """Send the request and return once the status line and headers arrived."""
        ...

    async def aclose(self) -> None:
        """Close every pooled connection; calls after this raise RuntimeError."""
        ...


class TransportError(Exception):
    """The exchange failed below HTTP: no answer, or the answer's body was cut."""

    def __init__(self, cause: BaseException) -> None:
        # Name the library's own exception: "ClientConnectorError: Cannot connect to host ...".
        super().__init__(f"{type(cause).__name__}: {cause or 'no detail'}")


class ConnectFailed(TransportError):
    """No connection could be made (refused, unresolvable, connect timeout): nothing was sent."""


class ConnectionBroken(TransportError):
    """The connection failed mid-exchange: reset, closed by the server (a stale keep-alive
    connection included), or a body cut short."""


class TransportTimeout(TransportError):
    """The library's own per-operation timer (read, write, pool) expired."""
