"""The same network failure is the same gateway error whichever adapter met it.

Each adapter talks to a real loopback server that misbehaves on purpose (tests/unit/upstream/
rawserver.py); the LiteLLM client above it must classify, retry and report alike.
"""

from __future__ import annotations

import pytest

from llm_gateway.errors import (
    GatewayError,
    StreamInterrupted,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from llm_gateway.resilience.breaker import CircuitBreakerRegistry
from llm_gateway.resilience.deadline import Deadline
from llm_gateway.resilience.retry import RetryPolicy
from llm_gateway.upstream.litellm import LiteLLMClient
from tests.support.processes import free_port
from tests.unit.upstream.rawserver import Behaviour, raw_server
from tests.unit.upstream.scripted import ADAPTERS, real_adapter

PAYLOAD = {"model": "m", "messages": [{"role": "user", "content": "Hi"}]}


async def _no_sleep(_: float) -> None:
    return None


def make_client(kind: str, url: str, *, read_timeout: float = 5) -> LiteLLMClient:
    return LiteLLMClient(
        real_adapter(kind, url, read_timeout=read_timeout),
        api_key=None,
        retry=RetryPolicy(max_retries=1, sleep=_no_sleep, random=lambda: 0.0),
        breakers=CircuitBreakerRegistry(failure_threshold=10),
        request_timeout=5,
        stream_first_token_timeout=5,
        stream_idle_timeout=5,
        models_cache_ttl=0,
    )


@pytest.mark.parametrize("kind", ADAPTERS)
async def test_a_refused_connection_is_unavailable(kind: str) -> None:
    client = make_client(kind, f"http://127.0.0.1:{free_port()}")
    try:
        with pytest.raises(UpstreamUnavailable, match="Could not reach the upstream"):
            await client.chat(PAYLOAD, deadline=Deadline(5))
    finally:
        await client.aclose()


@pytest.mark.parametrize("kind", ADAPTERS)
@pytest.mark.parametrize(
    ("behaviour", "error", "message"),
    [
        pytest.param("cut_body", UpstreamUnavailable, "connection to the upstream", id="cut-body"),
        pytest.param("hang_up", UpstreamUnavailable, "connection to the upstream", id="hang-up"),
        pytest.param("stall", UpstreamTimeout, "did not answer within", id="read-timeout"),
    ],
)  # fmt: skip
async def test_a_failed_exchange_is_classified_and_retried_alike(
    kind: str, behaviour: Behaviour, error: type[GatewayError], message: str
) -> None:
    async with raw_server(lambda _: behaviour) as server:
        client = make_client(kind, server.url, read_timeout=0.05)
        try:
            with pytest.raises(error, match=message):
                await client.chat(PAYLOAD, deadline=Deadline(5))
        finally:
            await client.aclose()
    assert server.requests == 2  # both are transient: one retry


@pytest.mark.parametrize("kind", ADAPTERS)
async def test_a_kept_alive_connection_the_server_dropped_costs_one_retry_not_an_error(
    kind: str,
) -> None:
    # Each connection answers its first request and hangs up on the second: the pooled
    # connection is dead when the client reuses it, like a keep-alive the server timed out.
    async with raw_server(lambda nth: "answer" if nth == 1 else "hang_up") as server:
        client = make_client(kind, server.url)
        try:
            first = await client.chat(PAYLOAD, deadline=Deadline(5))
            second = await client.chat(PAYLOAD, deadline=Deadline(5))
        finally:
            await client.aclose()
    assert (first.attempts, second.attempts) == (1, 2)
    assert server.connections == 2
    assert second.model_used == "m-1"


@pytest.mark.parametrize("kind", ADAPTERS)
async def test_a_stream_cut_before_its_first_event_is_unavailable_and_retried(kind: str) -> None:
    async with raw_server(lambda _: "cut_body") as server:
        client = make_client(kind, server.url)
        try:
            with pytest.raises(UpstreamUnavailable):
                async with client.stream_chat(PAYLOAD, deadline=Deadline(5)):
                    pass
        finally:
            await client.aclose()
    assert server.requests == 2


async def read_stream(client: LiteLLMClient, events: list[bytes]) -> None:
    async with client.stream_chat(PAYLOAD, deadline=Deadline(5)) as stream:
        async for event in stream:
            events.append(event)


@pytest.mark.parametrize("kind", ADAPTERS)
async def test_a_stream_cut_after_its_first_event_is_interrupted(kind: str) -> None:
    events: list[bytes] = []
    async with raw_server(lambda _: "cut_stream") as server:
        client = make_client(kind, server.url)
        try:
            with pytest.raises(StreamInterrupted, match="connection broke"):
                await read_stream(client, events)
        finally:
            await client.aclose()
    assert len(events) == 1
    assert server.requests == 1  # mid-stream: the caller already has bytes, no retry
