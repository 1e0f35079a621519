"""Response cache: exact tier, then semantic tier; a bounded per-worker table in front of Qdrant.

Import from the modules (kept out of this file so that importing one small module, e.g. slots,
does not pull in qdrant-client, which only loads when a store opens):

- `llm_gateway.cache.factory.build_response_cache(settings, metrics=..., http=...)`
- `llm_gateway.cache.response_cache.ResponseCache`
- `llm_gateway.cache.request.CacheRequest`, `CacheHit`, `cache_scope`
- `llm_gateway.cache.embedders.Embedder`, `HashingEmbedder`, `LiteLLMEmbedder`
"""
