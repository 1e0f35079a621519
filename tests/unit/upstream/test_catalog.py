"""The cascade is LiteLLM's own: read from its model list's `metadata.fallbacks`."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from llm_gateway.errors import UpstreamUnavailable
from llm_gateway.resilience.breaker import CircuitBreakerRegistry
from llm_gateway.resilience.deadline import Deadline
from llm_gateway.upstream.catalog import cascades
from tests.unit.resilience.fakes import FakeClock
from tests.unit.upstream.scripted import ScriptedUpstream, completion, json_reply, make_client


def entry(model: str, *fallbacks: str) -> dict[str, Any]:
    return {"id": model, "object": "model", "metadata": {"fallbacks": list(fallbacks)}}


SMART_ROUTER = [
    entry("smart-router", "smart-router-secondary"),
    entry("smart-router-secondary", "smart-router-fallback"),
    entry("smart-router-fallback"),
    entry("mock-gpt"),
]


def test_a_cascade_follows_nested_fallbacks_once_each() -> None:
    looped = [*SMART_ROUTER, entry("a", "b"), entry("b", "a", "c"), entry("c")]
    found = cascades(looped)
    assert found["smart-router"] == (
        "smart-router",
        "smart-router-secondary",
        "smart-router-fallback",
    )
    assert found["smart-router-secondary"] == ("smart-router-secondary", "smart-router-fallback")
    assert found["mock-gpt"] == ("mock-gpt",)
    assert found["a"] == ("a", "b", "c")


def catalog_reply(models: list[dict[str, Any]]) -> httpx.Response:
    return json_reply(200, {"object": "list", "data": models})


async def test_each_model_of_the_chain_gets_its_share_of_the_deadline() -> None:
    clock = FakeClock()
    upstream = ScriptedUpstream(catalog_reply(SMART_ROUTER), json_reply(200, completion()))
    client = make_client(upstream, clock, read_cascades=True)
    await client.chat({"model": "smart-router", "messages": []}, deadline=Deadline(45, clock))
    catalog, chat = upstream.requests
    assert str(catalog.url).endswith("/v1/models?include_metadata=true")
    assert orjson.loads(chat.content)["timeout"] == pytest.approx(14.833, abs=1e-3)
    # The public list is OpenAI's: LiteLLM's metadata stays inside the gateway.
    assert all("metadata" not in model for model in await client.list_models())
    assert upstream.calls == 2  # the list was fetched once


async def test_a_catalog_that_cannot_be_read_leaves_the_model_alone_in_its_cascade() -> None:
    clock = FakeClock()
    upstream = ScriptedUpstream(json_reply(500, {"error": "down"}), json_reply(200, completion()))
    client = make_client(upstream, clock, read_cascades=True)
    assert await client.cascade("smart-router") == ("smart-router",)
    result = await client.chat(
        {"model": "smart-router", "messages": []}, deadline=Deadline(45, clock)
    )
    assert result.attempts == 1
    assert upstream.calls == 2  # no second catalog fetch right after a failed one


async def test_a_primary_whose_circuit_is_open_is_answered_from_its_cascade() -> None:
    clock = FakeClock()
    breakers = CircuitBreakerRegistry(failure_threshold=1, recovery_seconds=30, clock=clock)
    with pytest.raises(UpstreamUnavailable), breakers.guard("smart-router"):
        raise UpstreamUnavailable("down")
    upstream = ScriptedUpstream(catalog_reply(SMART_ROUTER), json_reply(200, completion()))
    client = make_client(upstream, clock, read_cascades=True, breakers=breakers)
    await client.chat({"model": "smart-router", "messages": []}, deadline=Deadline(45, clock))
    chat = orjson.loads(upstream.requests[1].content)
    # LiteLLM walks on from the secondary: the rest of the chain shares the deadline.
    assert chat["model"] == "smart-router-secondary"
    assert chat["timeout"] == pytest.approx(22.25)
