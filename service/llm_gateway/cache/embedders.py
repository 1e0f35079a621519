"""Embedders behind one small interface: the semantic cache only needs `embed(texts)`.

`HashingEmbedder` (hashing.py) is the offline default: lexical feature hashing, no model
download. `LiteLLMEmbedder` asks the LiteLLM proxy's OpenAI-compatible `/v1/embeddings` for a real
embedding model through the gateway's own LiteLLM client, so embeddings share its pool, retries,
deadline and circuit breaker. Both return unit-length vectors so cosine similarity is a dot
product. A bad answer raises `UpstreamError` (or the client's mapped upstream error); the cache
around them fails open.
"""

from __future__ import annotations

import math
from typing import Any, Protocol, runtime_checkable

from llm_gateway.cache.hashing import DEFAULT_DIMENSIONS, HashingEmbedder
from llm_gateway.errors import UpstreamError


@runtime_checkable
class Embedder(Protocol):
    name: str
    dimensions: int

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """One unit-length vector per text, in order."""
        ...


def unit_vector(values: list[float]) -> list[float]:
    norm = math.sqrt(math.fsum(v * v for v in values))
    if norm == 0 or not math.isfinite(norm):
        raise UpstreamError("embedding has zero or non-finite length")
    return [v / norm for v in values]


class EmbeddingsSource(Protocol):
    """What the LiteLLM embedder needs: `LiteLLMClient.embeddings` (POST /v1/embeddings)."""

    async def embeddings(self, model: str, inputs: list[str]) -> dict[str, Any]: ...


class LiteLLMEmbedder:
    """Embeddings of `model` from the LiteLLM proxy, through the injected `source`.

    `dimensions` is learned from the first answer unless given; the semantic store needs it to
    create its collection, so `ResponseCache.open` calls `embed` once when it is unknown.
    """

    def __init__(
        self, source: EmbeddingsSource, model: str, *, dimensions: int | None = None
    ) -> None:
        self._source = source
        self._model = model
        self.name = f"litellm-{model}"
        self.dimensions = dimensions or 0

    async def embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        body = await self._source.embeddings(self._model, texts)
        vectors = self._vectors(body, len(texts))
        size = len(vectors[0])
        if any(len(vector) != size for vector in vectors):
            raise UpstreamError("embeddings of one batch have different lengths")
        if self.dimensions and size != self.dimensions:
            raise UpstreamError(f"expected {self.dimensions} dimensions, got {size}")
        self.dimensions = size
        return [unit_vector(vector) for vector in vectors]

    @staticmethod
    def _vectors(body: Any, expected: int) -> list[list[float]]:
        try:
            items = sorted(body["data"], key=lambda item: item.get("index", 0))
            vectors = [[float(v) for v in item["embedding"]] for item in items]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise UpstreamError(f"malformed embeddings body: {type(exc).__name__}") from None
        if len(vectors) != expected or not vectors[0]:
            raise UpstreamError(f"asked for {expected} embeddings, got {len(vectors)}")
        return vectors


__all__ = [
    "DEFAULT_DIMENSIONS",
    "Embedder",
    "EmbeddingsSource",
    "HashingEmbedder",
    "LiteLLMEmbedder",
    "unit_vector",
]
