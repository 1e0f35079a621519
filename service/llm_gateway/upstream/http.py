"""The one pooled HTTP client to the LiteLLM proxy, owned by the app's lifespan.

Two transports behind the same `httpx.AsyncClient` API: httpx's own pool and aiohttp's through
`httpx_aiohttp.AiohttpTransport` (measured faster here, see bench/transport_bench.py). Tests
inject a transport (`httpx.MockTransport`) instead. Constructing the client does no I/O: the
aiohttp session and the connections open on the first request, inside the running loop.

Timeouts set here are per operation (connect, read, write, pool); the LiteLLM client adds the
per-attempt total and the per-request deadline on top.
"""

from __future__ import annotations

from typing import Literal

import httpx
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.trace import TracerProvider

TransportKind = Literal["aiohttp", "httpx"]

# LiteLLM's proxy runs under uvicorn, which closes idle keep-alive connections after 5 s. A
# pooled connection kept longer is dead on the server side, and the next POST written to it fails
# ("Can not write request body"), which was seen opening circuits after quiet periods. Drop ours
# first.
IDLE_CONNECTION_SECONDS = 4.0


def build_upstream_http_client(
    base_url: str,
    transport_kind: TransportKind,
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
    if transport is None and transport_kind == "aiohttp":
        from httpx_aiohttp import AiohttpTransport

        transport = AiohttpTransport(limits=limits)
    elif transport is None and transport_kind != "httpx":
        raise ValueError(f"unknown upstream transport {transport_kind!r}; use aiohttp or httpx")
    client = httpx.AsyncClient(
        base_url=base_url,
        timeout=httpx.Timeout(request_timeout, connect=connect_timeout),
        limits=limits,
        transport=transport,
        # LiteLLM sits next to the gateway (same cluster or host): no proxy from the env.
        trust_env=False,
        headers={"User-Agent": "llm-gateway"},
    )
    if tracer_provider is not None:
        HTTPXClientInstrumentor().instrument_client(client, tracer_provider=tracer_provider)
    return client
