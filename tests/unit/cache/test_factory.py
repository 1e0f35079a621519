"""The cache is built from Settings, opened by the lifespan and checked by /health/detailed."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from llm_gateway.cache.embedders import HashingEmbedder, LiteLLMEmbedder
from llm_gateway.cache.factory import build_embedder, build_response_cache
from llm_gateway.health import HealthChecker
from llm_gateway.observability.metrics import Metrics
from llm_gateway.upstream.factory import build_litellm_client
from tests.support.settings import make_settings
from tests.unit.cache.conftest import answer, chat


def test_no_cache_is_built_when_it_is_disabled(tmp_path: Path) -> None:
    assert build_response_cache(make_settings(tmp_path), metrics=None) is None


def test_the_default_embedder_is_the_offline_hashing_one(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, cache_enabled="true")
    assert isinstance(build_embedder(settings, None), HashingEmbedder)


async def test_the_litellm_embedder_needs_the_litellm_client(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, cache_enabled="true", embedder="litellm")
    with pytest.raises(ValueError, match="LiteLLM client"):
        build_embedder(settings, None)
    transport = httpx.MockTransport(lambda request: httpx.Response(503))
    client = build_litellm_client(settings, transport=transport)
    embedder = build_embedder(settings, client)
    await client.aclose()
    assert isinstance(embedder, LiteLLMEmbedder)
    assert embedder.name == "litellm-text-embedding-3-small"


async def test_a_cache_built_from_settings_serves_hits_and_reports_health(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, cache_enabled="true", cache_ttl_seconds="60")
    cache = build_response_cache(settings, metrics=Metrics())
    assert cache is not None
    await cache.open()
    try:
        await cache.store(chat("What is the capital of France?"), answer("Paris"))
        hit = await cache.lookup(chat("What's the capital of France?"))
        assert hit is not None
        assert hit.payload == answer("Paris")
        checker = HealthChecker(timeout=2, ttl=0)
        checker.register("qdrant", cache.health)
        result = (await checker.run())["qdrant"]
        assert result.status == "up"
        assert result.details["entries"] == 1
        assert result.details["collection"] == settings.qdrant_collection
        assert result.details["mode"] == "edge"
        shard = tmp_path / "qdrant-edge" / f"{settings.qdrant_collection}__hashing-v1-512"
        assert (shard / "worker-0" / "edge_config.json").is_file()
    finally:
        await cache.close()
