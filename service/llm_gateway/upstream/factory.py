"""Build the LiteLLM client from `Settings`: the one call the app's lifespan makes."""

from __future__ import annotations

import httpx
from opentelemetry.trace import TracerProvider

from llm_gateway.observability.metrics import Metrics
from llm_gateway.resilience.breaker import CircuitBreakerRegistry
from llm_gateway.resilience.retry import RetryPolicy
from llm_gateway.settings import Settings
from llm_gateway.upstream.aiohttp_upstream import AiohttpUpstream
from llm_gateway.upstream.http import HttpxUpstream, build_upstream_http_client
from llm_gateway.upstream.litellm import LiteLLMClient
from llm_gateway.upstream.port import Upstream


def build_upstream(
    settings: Settings,
    *,
    tracer_provider: TracerProvider | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Upstream:
    """The adapter UPSTREAM_TRANSPORT names; an injected httpx `transport` means httpx's.

    aiohttp (the default) is `AiohttpUpstream`; httpx is an `httpx.AsyncClient` with its own pool.
    """
    if transport is None and settings.upstream_transport == "aiohttp":
        return AiohttpUpstream(
            settings.litellm_base_url,
            connect_timeout=settings.upstream_connect_timeout,
            # The attempt's own timeout (resilience/budget.py) is the real bound; the adapter's
            # must not cut an attempt that waits for LiteLLM's whole fallback chain.
            read_timeout=settings.request_deadline,
            max_connections=settings.upstream_max_connections,
            tracer_provider=tracer_provider,
        )
    return HttpxUpstream(
        build_upstream_http_client(
            settings.litellm_base_url,
            connect_timeout=settings.upstream_connect_timeout,
            request_timeout=settings.request_deadline,
            max_connections=settings.upstream_max_connections,
            tracer_provider=tracer_provider,
            transport=transport,
        )
    )


def build_litellm_client(
    settings: Settings,
    *,
    metrics: Metrics | None = None,
    tracer_provider: TracerProvider | None = None,
    breakers: CircuitBreakerRegistry | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> LiteLLMClient:
    """A ready client; no I/O happens until its first call. Close it with `await .aclose()`."""
    api_key = settings.litellm_api_key
    return LiteLLMClient(
        build_upstream(settings, tracer_provider=tracer_provider, transport=transport),
        api_key=api_key.get_secret_value() if api_key is not None else None,
        retry=RetryPolicy(
            max_retries=settings.retries_after_first_try,
            backoff_base=settings.retry_backoff_base,
            backoff_max=settings.retry_backoff_max,
            jitter=settings.retry_jitter,
            retry_after_cap=settings.retry_after_cap,
        ),
        breakers=breakers
        or CircuitBreakerRegistry(
            failure_threshold=settings.breaker_failure_threshold,
            recovery_seconds=settings.breaker_recovery_seconds,
            metrics=metrics,
        ),
        request_timeout=settings.upstream_request_timeout,
        stream_first_token_timeout=settings.stream_first_token_timeout,
        stream_idle_timeout=settings.stream_idle_timeout,
        models_cache_ttl=settings.models_cache_ttl,
        metrics=metrics,
        read_cascades=settings.upstream_read_cascades,
    )
