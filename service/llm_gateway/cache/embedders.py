"""Embedders behind one small interface: the semantic cache only needs `embed(texts)`.

`HashingEmbedder` (hashing.py) is the offline default: lexical feature hashing, no model
download. `LiteLLMEmbedder` asks the LiteLLM proxy's OpenAI-compatible `/v1/embeddings` for a real
embedding model. Both return unit-length vectors so cosine similarity is a dot product. A bad
answer from the proxy raises `UpstreamError` (transport errors raise as httpx's); the cache around
them fails open.
"""

from __future__ import annotations

import math
from typing import Any, Protocol, runtime_checkable

import httpx

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


class LiteLLMEmbedder:
    """Embeddings from the LiteLLM proxy (`POST {base_url}/v1/embeddings`).

    The HTTP client is injected (the app's pooled upstream client, or a MockTransport in tests).
    `dimensions` is learned from the first answer unless given; the semantic store needs it to
    create its collection, so `ResponseCache.open` calls `embed` once when it is unknown.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        api_key: str | None,
        model: str,
        *,
        dimensions: int | None = None,
        timeout: float | None = None,
    ) -> None:
        self._http = http
        self._url = f"{base_url.rstrip('/')}/v1/embeddings"
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._model = model
        self._timeout = timeout
        self.name = f"litellm-{model}"
        self.dimensions = dimensions or 0

    async def embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        response = await self._http.post(
            self._url,
            json={"model": self._model, "input": texts},
            headers=self._headers,
            timeout=self._timeout if self._timeout is not None else httpx.USE_CLIENT_DEFAULT,
        )
        if response.status_code != 200:
            # The body may echo the request; only the status travels into logs.
            raise UpstreamError(f"embeddings answered HTTP {response.status_code}")
        vectors = self._vectors(response.json(), len(texts))
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
    "HashingEmbedder",
    "LiteLLMEmbedder",
    "unit_vector",
]
