from __future__ import annotations

import asyncio

import httpx
import orjson
import pytest

from llm_gateway.errors import UpstreamError, UpstreamUnavailable
from tests.unit.resilience.fakes import FakeClock
from tests.unit.upstream.scripted import API_KEY, ScriptedUpstream, json_reply, make_client

MODELS = {"object": "list", "data": [{"id": "smart-router"}, {"id": "gpt-4o-mini"}]}


async def test_the_model_list_is_reused_until_its_ttl_passes() -> None:
    clock = FakeClock()
    upstream = ScriptedUpstream(json_reply(200, MODELS))
    client = make_client(upstream, clock, models_cache_ttl=30)
    first = await client.list_models()
    clock.advance(29)
    assert await client.list_models() == first
    assert upstream.calls == 1
    clock.advance(2)
    await client.list_models()
    assert upstream.calls == 2
    assert [m["id"] for m in first] == ["smart-router", "gpt-4o-mini"]
    assert upstream.requests[0].url.path == "/v1/models"
    assert upstream.requests[0].headers["authorization"] == f"Bearer {API_KEY}"


async def test_concurrent_callers_share_one_fetch() -> None:
    clock = FakeClock()

    async def slow_models(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.01)
        return json_reply(200, MODELS)

    upstream = ScriptedUpstream(slow_models)
    client = make_client(upstream, clock)
    results = await asyncio.gather(*(client.list_models() for _ in range(10)))
    assert upstream.calls == 1
    assert all(result == results[0] for result in results)


async def test_a_failed_fetch_is_not_cached() -> None:
    clock = FakeClock()
    upstream = ScriptedUpstream(httpx.ConnectError("refused"), json_reply(200, MODELS))
    client = make_client(upstream, clock)
    with pytest.raises(UpstreamUnavailable):
        await client.list_models()
    assert len(await client.list_models()) == 2


async def test_a_model_list_without_data_is_an_upstream_error() -> None:
    clock = FakeClock()
    upstream = ScriptedUpstream(json_reply(200, {"models": []}))
    with pytest.raises(UpstreamError, match="no `data`"):
        await make_client(upstream, clock).list_models()


async def test_health_asks_litellm_liveliness() -> None:
    clock = FakeClock()
    upstream = ScriptedUpstream(json_reply(200, "I'm alive!"))
    assert await make_client(upstream, clock).health() == {"liveliness": "I'm alive!"}
    assert upstream.requests[0].url.path == "/health/liveliness"


@pytest.mark.parametrize(
    ("reply", "error_class"),
    [
        pytest.param(httpx.ConnectError("refused"), UpstreamUnavailable, id="down"),
        pytest.param(json_reply(500, {"error": "sick"}), UpstreamError, id="500"),
    ],
)
async def test_health_raises_when_litellm_is_not_alive(
    reply: httpx.Response | Exception, error_class: type[Exception]
) -> None:
    clock = FakeClock()
    with pytest.raises(error_class):
        await make_client(ScriptedUpstream(reply), clock).health()


async def test_embeddings_post_the_inputs_and_return_the_body() -> None:
    clock = FakeClock()
    body = {"data": [{"embedding": [0.1, 0.2], "index": 0}], "model": "text-embedding-3-small"}
    upstream = ScriptedUpstream(json_reply(503, {"error": "busy"}), json_reply(200, body))
    client = make_client(upstream, clock)
    assert await client.embeddings("text-embedding-3-small", ["hello"]) == body
    sent = orjson.loads(upstream.requests[-1].content)
    # LiteLLM's own timeout: what the 30 s budget has left after the first try and its backoff.
    assert 0 < sent.pop("timeout") <= 29
    assert sent == {"model": "text-embedding-3-small", "input": ["hello"]}
    assert upstream.calls == 2  # retried like chat
