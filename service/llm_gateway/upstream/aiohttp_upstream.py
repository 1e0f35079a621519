"""The production upstream adapter: one aiohttp session, no httpx objects on the hot path.

Going through httpx (even over aiohttp's transport) built httpx Request/Headers/URL objects and
then aiohttp built its own: about a sixth of a worker's CPU in the floor-chain profile. Here the
LiteLLM client's headers and orjson body bytes go straight into aiohttp.

The session and its `TCPConnector` (at most `max_connections`, idle connections dropped after
`IDLE_CONNECTION_SECONDS`) are created on first use, inside the running loop, and closed by
`aclose()`. No cookie jar: LiteLLM's cookies must never travel from one caller's request to
another's.

Tracing: given a tracer provider, each request carries W3C `traceparent`/`tracestate` of the
current context. A CLIENT span (`POST /v1/chat/completions`) is opened only when the current span
is recording; with tracing on but no exporter the gateway's spans are non-recording, and then the
only work is the header injection.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import aiohttp
from opentelemetry import trace
from opentelemetry.propagate import inject
from opentelemetry.trace import Span, SpanKind, StatusCode, Tracer, TracerProvider
from yarl import URL

from llm_gateway.upstream.port import (
    IDLE_CONNECTION_SECONDS,
    USER_AGENT,
    ConnectFailed,
    ConnectionBroken,
    TransportError,
    TransportTimeout,
    UpstreamResponse,
)


def transport_error(exc: aiohttp.ClientError) -> TransportError:
    """aiohttp's failure as the port's.

    A connect timeout is a ServerTimeoutError too, so connect failures are told apart first; a
    write to a keep-alive connection the server already closed surfaces as ClientOSError or
    ServerDisconnectedError and, like any other mid-exchange failure, is `ConnectionBroken`.
    """
    if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError):
        return ConnectFailed(exc)
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return TransportTimeout(exc)
    return ConnectionBroken(exc)


class AiohttpStreamResponse:
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status
        self.headers: Mapping[str, str] = response.headers

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except aiohttp.ClientError as exc:
            raise transport_error(exc) from exc

    async def aread(self) -> bytes:
        try:
            return await self._response.read()
        except aiohttp.ClientError as exc:
            raise transport_error(exc) from exc

    async def aclose(self) -> None:
        if self._response.content.at_eof():
            self._response.release()  # read to the end: the connection goes back to the pool
        else:
            self._response.close()  # cut mid-body: the connection cannot be reused


class AiohttpUpstream:
    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout: float,
        read_timeout: float,
        max_connections: int,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        """No I/O and no loop needed here; `read_timeout` bounds each wait for bytes."""
        self._base_url = base_url.rstrip("/")
        self._url = URL(self._base_url)
        self._timeout = aiohttp.ClientTimeout(
            # Waiting for a free pooled connection is bounded by the caller's attempt timeout
            # (as httpx's pool timeout was), so only the TCP connect gets `connect_timeout`.
            total=None,
            connect=None,
            sock_connect=connect_timeout,
            sock_read=read_timeout,
        )
        self._max_connections = max_connections
        self._tracer: Tracer | None = (
            tracer_provider.get_tracer(__name__) if tracer_provider is not None else None
        )
        self._urls: dict[str, URL] = {}
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    def _session_now(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("the upstream client is closed")
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, keepalive_timeout=IDLE_CONNECTION_SECONDS
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                headers={"User-Agent": USER_AGENT},
                cookie_jar=aiohttp.DummyCookieJar(),
                # LiteLLM sits next to the gateway (same cluster or host): no proxy from the env.
                trust_env=False,
            )
        return self._session

    def _full_url(self, path: str) -> URL:
        url = self._urls.get(path)
        if url is None:  # a handful of fixed paths: parse each once
            url = self._urls[path] = URL(self._base_url + path)
        return url

    async def _request(
        self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]
    ) -> tuple[aiohttp.ClientResponse, Span | None]:
        session = self._session_now()
        span: Span | None = None
        if self._tracer is not None:
            headers = dict(headers)
            if trace.get_current_span().is_recording():
                span = self._start_span(method, path)
                inject(headers, context=trace.set_span_in_context(span))
            else:
                inject(headers)
        try:
            response = await session.request(
                method, self._full_url(path), data=body, headers=headers
            )
        except aiohttp.ClientError as exc:
            error = transport_error(exc)
            _end_span(span, None, exc)
            raise error from exc
        except BaseException as exc:
            _end_span(span, None, exc)
            raise
        return response, span

    async def send(
        self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]
    ) -> UpstreamResponse:
        response, span = await self._request(method, path, body, headers)
        try:
            content = await response.read()
        except BaseException as exc:
            response.close()
            _end_span(span, response.status, exc)
            if isinstance(exc, aiohttp.ClientError):
                raise transport_error(exc) from exc
            raise
        _end_span(span, response.status, None)
        return UpstreamResponse(response.status, response.headers, content)

    async def open_stream(
        self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]
    ) -> AiohttpStreamResponse:
        response, span = await self._request(method, path, body, headers)
        _end_span(span, response.status, None)  # the span covers the exchange up to headers
        return AiohttpStreamResponse(response)

    async def aclose(self) -> None:
        self._closed = True
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _start_span(self, method: str, path: str) -> Span:
        assert self._tracer is not None
        return self._tracer.start_span(
            f"{method} {path}",
            kind=SpanKind.CLIENT,
            attributes={
                "http.request.method": method,
                "url.full": self._base_url + path,
                "server.address": self._url.host or "",
                "server.port": self._url.port or 0,
            },
        )


def _end_span(span: Span | None, status: int | None, exc: BaseException | None) -> None:
    if span is None:
        return
    if status is not None:
        span.set_attribute("http.response.status_code", status)
        if status >= 400:  # OTel HTTP conventions: 4xx and 5xx are errors on a CLIENT span
            span.set_attribute("error.type", str(status))
            span.set_status(StatusCode.ERROR)
    if exc is not None:
        span.set_attribute("error.type", type(exc).__name__)
        span.set_status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}")
    span.end()
