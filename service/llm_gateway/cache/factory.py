"""Builds the ResponseCache the app's lifespan opens, from Settings (the only place that reads
them for the cache). Construction does no I/O; `await cache.open()` does."""

from __future__ import annotations

from llm_gateway.cache.embedders import (
    Embedder,
    EmbeddingsSource,
    HashingEmbedder,
    LiteLLMEmbedder,
)
from llm_gateway.cache.response_cache import ResponseCache
from llm_gateway.observability.metrics import Metrics
from llm_gateway.settings import Settings


def build_embedder(settings: Settings, upstream: EmbeddingsSource | None) -> Embedder:
    if settings.embedder == "litellm":
        if upstream is None:
            raise ValueError("EMBEDDER=litellm needs the LiteLLM client")
        return LiteLLMEmbedder(upstream, settings.embedding_model)
    return HashingEmbedder()


def build_response_cache(
    settings: Settings,
    *,
    metrics: Metrics | None,
    upstream: EmbeddingsSource | None = None,
) -> ResponseCache | None:
    """None when CACHE_ENABLED is false."""
    if not settings.cache_enabled:
        return None
    api_key = settings.qdrant_api_key
    return ResponseCache(
        embedder=build_embedder(settings, upstream),
        metrics=metrics,
        ttl_seconds=settings.cache_ttl_seconds,
        max_entries=settings.cache_max_entries,
        timeout=settings.cache_timeout,
        semantic_enabled=settings.semantic_cache_enabled,
        semantic_threshold=settings.semantic_cache_threshold,
        collection=settings.qdrant_collection,
        data_dir=settings.data_dir,
        qdrant_url=settings.qdrant_url,
        qdrant_api_key=api_key.get_secret_value() if api_key is not None else None,
    )
