"""Response cache: exact tier (in-process LRU + Qdrant by id), then semantic tier (Qdrant)."""

from llm_gateway.cache.embedders import Embedder, HashingEmbedder, LiteLLMEmbedder
from llm_gateway.cache.factory import build_response_cache
from llm_gateway.cache.request import CacheHit, CacheRequest, cache_scope
from llm_gateway.cache.response_cache import ResponseCache

__all__ = [
    "CacheHit",
    "CacheRequest",
    "Embedder",
    "HashingEmbedder",
    "LiteLLMEmbedder",
    "ResponseCache",
    "build_response_cache",
    "cache_scope",
]
