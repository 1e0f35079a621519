"""Streams recover on the cascade: before the first byte by failing over, after it by
continuing the partial answer on the next model; a refusal is an answer, never laundered."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from llm_gateway.errors import StreamInterrupted, UpstreamBadRequest, UpstreamUnavailable
from llm_gateway.resilience.breaker import CircuitBreakerRegistry
from llm_gateway.resilience.deadline import Deadline
from llm_gateway.upstream.litellm import LiteLLMClient
from tests.unit.resilience.fakes import FakeClock
from tests.unit.upstream.scripted import (
    ScriptedUpstream,
    json_reply,
    make_client,
    sse_reply,
)

CASCADE = [
    {"id": "primary", "metadata": {"fallbacks": ["secondary"]}},
    {"id": "secondary", "metadata": {"fallbacks": []}},
]
PAYLOAD = {"model": "primary", "messages": [{"role": "user", "content": "Count"}]}
DONE = b"data: [DONE]\n\n"


def chunk(content: str, model: str = "primary", finish: str | None = None) -> bytes:
    choice: dict[str, Any] = {"index": 0, "delta": {"content": content}, "finish_reason": finish}
    body = {"object": "chat.completion.chunk", "model": model, "choices": [choice]}
    return b"data: " + orjson.dumps(body) + b"\n\n"


def catalog() -> httpx.Response:
    return json_reply(200, {"object": "list", "data": CASCADE})


def client_for(upstream: ScriptedUpstream, clock: FakeClock, **options: Any) -> LiteLLMClient:
    return make_client(upstream, clock, read_cascades=True, **options)


async def read_all(client: LiteLLMClient, clock: FakeClock) -> tuple[list[bytes], Any]:
    events: list[bytes] = []
    async with client.stream_chat(PAYLOAD, deadline=Deadline(45, clock)) as stream:
        async for event in stream:
            events.append(event)
    return events, stream


def sent(upstream: ScriptedUpstream, index: int) -> dict[str, Any]:
    body: dict[str, Any] = orjson.loads(upstream.requests[index].content)
    return body


async def test_a_silent_first_token_fails_over_before_any_byte_is_sent() -> None:
    clock = FakeClock()
    answer = [chunk("1 2 3", "secondary", "stop"), DONE]
    upstream = ScriptedUpstream(catalog(), sse_reply(0.5, chunk("late")), sse_reply(*answer))
    client = client_for(upstream, clock, first_token_timeout=0.05)
    events, stream = await read_all(client, clock)
    assert events == answer
    assert stream.model_used == "secondary"
    first, second = sent(upstream, 1), sent(upstream, 2)
    # The gateway walks the cascade itself, one model at a time, each with its share.
    assert (first["model"], first["disable_fallbacks"]) == ("primary", True)
    assert second["model"] == "secondary"
    assert upstream.streams[0].closed


async def test_a_cut_mid_answer_is_continued_by_the_fallback_from_the_partial_answer() -> None:
    clock = FakeClock()
    cut = sse_reply(chunk("1 2 "), httpx.ReadError("connection reset"))
    rest = [chunk("3", "secondary", "stop"), DONE]
    upstream = ScriptedUpstream(catalog(), cut, sse_reply(*rest))
    events, stream = await read_all(client_for(upstream, clock), clock)
    assert events == [chunk("1 2 "), *rest]
    assert stream.text == "1 2 3"
    assert stream.completed
    assert stream.recovered == 1
    continued = sent(upstream, 2)
    assert continued["model"] == "secondary"
    assert continued["messages"] == [*PAYLOAD["messages"], {"role": "assistant", "content": "1 2 "}]


@pytest.mark.parametrize(
    "break_",
    [
        pytest.param(b"data: {not json\n\n", id="malformed"),
        pytest.param(0.5, id="stall"),
    ],
)
async def test_a_malformed_chunk_or_a_stall_mid_answer_is_continued_too(break_: Any) -> None:
    clock = FakeClock()
    broken = sse_reply(chunk("1 2 "), break_, chunk("never"))
    upstream = ScriptedUpstream(catalog(), broken, sse_reply(chunk("3", "secondary", "stop"), DONE))
    events, stream = await read_all(client_for(upstream, clock, idle_timeout=0.05), clock)
    assert stream.text == "1 2 3"
    assert events[-1] == DONE


async def test_a_fallback_refusing_the_prefix_ends_with_the_in_band_error() -> None:
    clock = FakeClock()
    cut = sse_reply(chunk("1 2 "), httpx.ReadError("connection reset"))
    refusal = json_reply(400, {"error": {"message": "assistant prefill is not supported"}})
    upstream = ScriptedUpstream(catalog(), cut, refusal)
    received: list[bytes] = []

    async def read() -> None:
        async with client_for(upstream, clock).stream_chat(
            PAYLOAD, deadline=Deadline(45, clock)
        ) as stream:
            async for event in stream:
                received.append(event)

    with pytest.raises(StreamInterrupted, match="refused to continue the partial answer"):
        await read()
    assert received == [chunk("1 2 ")]  # what was sent stays sent; nothing is repeated


async def test_a_clean_end_after_finish_reason_without_done_is_a_whole_answer() -> None:
    clock = FakeClock()
    upstream = ScriptedUpstream(catalog(), sse_reply(chunk("1 2 3", finish="stop")))
    events, stream = await read_all(client_for(upstream, clock), clock)
    assert events == [chunk("1 2 3", finish="stop"), DONE]  # the caller's client sees the end
    assert stream.completed
    assert upstream.calls == 2  # no fallback for a whole answer


async def test_a_content_filter_refusal_is_the_answer_not_a_reason_to_fall_back() -> None:
    clock = FakeClock()
    refusal = json_reply(400, {"error": {"message": "flagged", "code": "content_policy_violation"}})
    upstream = ScriptedUpstream(catalog(), refusal, sse_reply(chunk("laundered"), DONE))
    with pytest.raises(UpstreamBadRequest) as raised:
        await read_all(client_for(upstream, clock), clock)
    assert raised.value.code == "content_policy_violation"
    assert upstream.calls == 2  # the catalog and the primary; never the fallback


async def test_a_primary_whose_circuit_is_open_streams_from_the_fallback() -> None:
    clock = FakeClock()
    breakers = CircuitBreakerRegistry(failure_threshold=1, recovery_seconds=30, clock=clock)
    with pytest.raises(UpstreamUnavailable), breakers.guard("primary"):
        raise UpstreamUnavailable("down")  # the one failure that opens this breaker
    upstream = ScriptedUpstream(catalog(), sse_reply(chunk("hi", "secondary", "stop"), DONE))
    _, stream = await read_all(client_for(upstream, clock, breakers=breakers), clock)
    assert stream.model_used == "secondary"
    assert [sent(upstream, 1)["model"]] == ["secondary"]
