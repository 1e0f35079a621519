"""The httpx flavour of the upstream port: an `httpx.AsyncClient` and `HttpxUpstream` over it.

Used for UPSTREAM_TRANSPORT=httpx (httpx's own pool) and whenever a transport is injected
(`httpx.MockTransport` in unit and API tests). UPSTREAM_TRANSPORT=aiohttp, the default, is
`AiohttpUpstream` instead (aiohttp_upstream.py), which skips httpx's request and response objects
altogether. Constructing either does no I/O:
connections open on the first request, inside the running loop.

Timeouts set here are per operation (connect, read, write, pool); the LiteLLM client adds the
per-attempt total and the per-request deadline on top.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import httpx
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.trace import TracerProvider

from llm_gateway.upstream.port import (
    IDLE_CONNECTION_SECONDS,
    USER_AGENT,
    ConnectFailed,
    ConnectionBroken,
    TransportError,
    TransportTimeout,
    UpstreamResponse,
)


def build_upstream_http_client(
    base_url: str,
    connect_timeout: float,
    request_timeout: float,
    max_connections: int,
    tracer_provider: TracerProvider | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """An AsyncClient for the upstream; close it with `await client.aclose()`.

    With a `tracer_provider`, every request gets a client span and carries W3C `traceparent`
    (and `tracestate`) so LiteLLM's own traces join the gateway's.
    """
    limits = httpx.Limits(
        max_connections=max_connections,
        max_keepalive_connections=max_connections,
        keepalive_expiry=IDLE_CONNECTION_SECONDS,
    )
    client = httpx.AsyncClient(
        base_url=base_url,
        timeout=httpx.Timeout(request_timeout, connect=connect_timeout),
        limits=limits,
        transport=transport,
        # LiteLLM sits next to the gateway (same cluster or host): no proxy from the env.
        trust_env=False,
        headers={"User-Agent": USER_AGENT},
    )
    if tracer_provider is not None:
        HTTPXClientInstrumentor().instrument_client(client, tracer_provider=tracer_provider)
    return client


def transport_error(exc: httpx.HTTPError) -> TransportError:
    """httpx's failure as the port's: connect failures, own timeouts, everything else broken."""
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return ConnectFailed(exc)
    if isinstance(exc, httpx.TimeoutException):
        return TransportTimeout(exc)
    return ConnectionBroken(exc)


class HttpxStreamResponse:
    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self.status = response.status_code
        self.headers: Mapping[str, str] = response.headers

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.aiter_bytes():
                yield chunk
        except httpx.HTTPError as exc:
            raise transport_error(exc) from exc

    async def aread(self) -> bytes:
        try:
            return await self._response.aread()
        except httpx.HTTPError as exc:
            raise transport_error(exc) from exc

    async def aclose(self) -> None:
        await self._response.aclose()


class HttpxUpstream:
    """The upstream port over an `httpx.AsyncClient`; owns the client (closes it in aclose)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def send(
        self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]
    ) -> UpstreamResponse:
        try:
            response = await self.client.request(method, path, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise transport_error(exc) from exc
        return UpstreamResponse(response.status_code, response.headers, response.content)

    async def open_stream(
        self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]
    ) -> HttpxStreamResponse:
        request = self.client.build_request(method, path, content=body, headers=headers)
        try:
            response = await self.client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise transport_error(exc) from exc
        return HttpxStreamResponse(response)

    async def aclose(self) -> None:
        await self.client.aclose()
