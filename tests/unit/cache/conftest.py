"""Builders for ResponseCache tests: real qdrant-client local mode in tmp_path, injected clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from llm_gateway.cache.embedders import HashingEmbedder
from llm_gateway.cache.request import CacheRequest
from llm_gateway.cache.response_cache import ResponseCache
from llm_gateway.observability.metrics import Metrics


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def lookups(metrics: Metrics, tier: str, result: str) -> float:
    value = metrics.registry.get_sample_value(
        "cache_lookups_total", {"tier": tier, "result": result}
    )
    return value or 0.0


def chat(
    prompt: str,
    *,
    scope: str = "shared",
    model: str = "gpt-4o-mini",
    system: str | None = None,
    **params: Any,
) -> CacheRequest:
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": prompt})
    return CacheRequest(
        model=model,
        messages=messages,
        scope=scope,
        prompt_text=prompt,
        params=params or {"temperature": 0.0},
    )


def answer(text: str) -> dict[str, Any]:
    return {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}],
        "model": "gpt-4o-mini",
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
    }


CacheFactory = Callable[..., Awaitable[ResponseCache]]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
async def make_cache(
    tmp_path: Path, clock: FakeClock, metrics: Metrics
) -> AsyncIterator[CacheFactory]:
    opened: list[ResponseCache] = []

    async def build(**overrides: Any) -> ResponseCache:
        options: dict[str, Any] = {
            "embedder": HashingEmbedder(),
            "metrics": metrics,
            "ttl_seconds": 3600,
            "timeout": 5.0,  # generous: only the fail-open tests want it to fire
            "semantic_enabled": True,
            "semantic_threshold": 0.92,
            "collection": "test_cache",
            "data_dir": tmp_path,
            "clock": clock,
        }
        options.update(overrides)
        cache = ResponseCache(**options)
        await cache.open()
        opened.append(cache)
        return cache

    yield build
    await asyncio.gather(*(cache.close() for cache in opened))
