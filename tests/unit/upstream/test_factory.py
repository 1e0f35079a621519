from __future__ import annotations

import httpx
import pytest

from llm_gateway.errors import UpstreamError
from llm_gateway.observability.metrics import Metrics
from llm_gateway.resilience.deadline import Deadline
from llm_gateway.upstream.aiohttp_upstream import AiohttpUpstream
from llm_gateway.upstream.factory import build_litellm_client, build_upstream
from llm_gateway.upstream.http import HttpxUpstream
from tests.support.settings import make_settings
from tests.unit.upstream.scripted import ScriptedUpstream, completion, error_reply, json_reply


async def test_the_client_built_from_settings_uses_their_key_and_retry_policy() -> None:
    settings = make_settings(
        LITELLM_API_KEY="sk-from-settings-000000",
        RETRIES_AFTER_FIRST_TRY=0,
        LITELLM_BASE_URL="http://litellm.internal:4000",
        UPSTREAM_READ_CASCADES="false",  # the script answers chat only
    )
    upstream = ScriptedUpstream(error_reply(503, "busy"), json_reply(200, completion()))
    client = build_litellm_client(
        settings, metrics=Metrics(), transport=httpx.MockTransport(upstream)
    )
    try:
        with pytest.raises(UpstreamError):
            await client.chat({"model": "m", "messages": []}, deadline=Deadline(5))
    finally:
        await client.aclose()
    assert upstream.calls == 1  # RETRIES_AFTER_FIRST_TRY=0: no retry of the 503
    request = upstream.requests[0]
    assert request.headers["authorization"] == "Bearer sk-from-settings-000000"
    assert str(request.url) == "http://litellm.internal:4000/v1/chat/completions"


async def test_without_a_key_no_authorization_header_is_sent() -> None:
    upstream = ScriptedUpstream(json_reply(200, completion()))
    client = build_litellm_client(make_settings(), transport=httpx.MockTransport(upstream))
    try:
        await client.chat({"model": "m", "messages": []}, deadline=Deadline(5))
    finally:
        await client.aclose()
    assert "authorization" not in upstream.requests[0].headers


@pytest.mark.parametrize("kind", ["httpx", "aiohttp"])
async def test_aclose_closes_the_pool(kind: str) -> None:
    client = build_litellm_client(make_settings(UPSTREAM_TRANSPORT=kind))
    await client.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await client.health()


@pytest.mark.parametrize(
    ("kind", "inject", "adapter"),
    [
        pytest.param("aiohttp", False, AiohttpUpstream, id="default-aiohttp-is-native"),
        pytest.param("httpx", False, HttpxUpstream, id="httpx-pool"),
        pytest.param("aiohttp", True, HttpxUpstream, id="an-injected-transport-means-httpx"),
    ],
)
async def test_the_transport_setting_picks_the_adapter(
    kind: str, inject: bool, adapter: type[object]
) -> None:
    transport = (
        httpx.MockTransport(ScriptedUpstream(json_reply(200, completion()))) if inject else None
    )
    upstream = build_upstream(make_settings(UPSTREAM_TRANSPORT=kind), transport=transport)
    try:
        assert isinstance(upstream, adapter)
    finally:
        await upstream.aclose()
