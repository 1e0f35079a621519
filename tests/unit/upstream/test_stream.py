from __future__ import annotations

import httpx
import orjson
import pytest

from llm_gateway.errors import StreamInterrupted, UpstreamError, UpstreamTimeout
from llm_gateway.resilience.deadline import Deadline
from llm_gateway.upstream.litellm import LiteLLMClient
from llm_gateway.upstream.recovery import RecoveringStream
from tests.unit.resilience.fakes import FakeClock
from tests.unit.upstream.scripted import (
    ScriptedUpstream,
    error_reply,
    make_client,
    sse_reply,
)

PAYLOAD = {"model": "smart-router", "messages": [{"role": "user", "content": "Hi"}]}


def chunk(content: str | None = None, *, usage: dict[str, int] | None = None) -> bytes:
    body: dict[str, object] = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [] if content is None else [{"index": 0, "delta": {"content": content}}],
    }
    if usage is not None:
        body["usage"] = usage
    return b"data: " + orjson.dumps(body) + b"\n\n"


DONE = b"data: [DONE]\n\n"
USAGE = {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}
HAPPY = [chunk("Hel"), chunk("lo"), chunk(usage=USAGE), DONE]


async def drain(
    client: LiteLLMClient, deadline: Deadline, received: list[bytes], opened: list[RecoveringStream]
) -> None:
    """Read a whole stream, keeping what arrived even when it ends in an error."""
    async with client.stream_chat(PAYLOAD, deadline=deadline) as stream:
        opened.append(stream)
        async for event in stream:
            received.append(event)


async def collect(client: LiteLLMClient, deadline: Deadline) -> tuple[list[bytes], object]:
    events: list[bytes] = []
    async with client.stream_chat(PAYLOAD, deadline=deadline) as stream:
        async for event in stream:
            events.append(event)
    return events, stream


async def test_events_pass_through_byte_exact_with_model_usage_and_text_captured() -> None:
    clock = FakeClock()
    body = b"".join(HAPPY)
    pieces = [body[i : i + 7] for i in range(0, len(body), 7)]  # events split mid-way
    upstream = ScriptedUpstream(sse_reply(*pieces))
    client = make_client(upstream, clock)
    async with client.stream_chat(PAYLOAD, deadline=Deadline(45, clock)) as stream:
        events = [event async for event in stream]
    assert events == HAPPY
    assert stream.completed
    assert stream.model_used == "gpt-4o-mini-2024-07-18"
    assert stream.usage is not None
    assert stream.usage.total_tokens == 11
    assert stream.text == "Hello"
    assert stream.attempts == 1
    assert upstream.streams[0].closed


async def test_the_request_asks_for_a_stream_with_usage() -> None:
    clock = FakeClock()
    upstream = ScriptedUpstream(sse_reply(*HAPPY))
    await collect(make_client(upstream, clock), Deadline(45, clock))
    sent = orjson.loads(upstream.requests[0].content)
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}
    assert upstream.requests[0].headers["accept"] == "text/event-stream"


async def test_a_first_token_timeout_is_retried_before_any_byte_is_sent() -> None:
    clock = FakeClock()
    stalled = sse_reply(0.5, *HAPPY)
    upstream = ScriptedUpstream(stalled, sse_reply(*HAPPY))
    client = make_client(upstream, clock, first_token_timeout=0.03)
    events, stream = await collect(client, Deadline(45, clock))
    assert events == HAPPY
    assert stream.attempts == 2  # type: ignore[attr-defined]
    assert upstream.streams[0].closed


async def test_first_token_timeouts_on_every_attempt_end_in_a_504() -> None:
    clock = FakeClock()
    upstream = ScriptedUpstream(lambda request: sse_reply(0.5, *HAPPY))
    client = make_client(upstream, clock, first_token_timeout=0.02, max_retries=1)
    with pytest.raises(UpstreamTimeout):
        await collect(client, Deadline(45, clock))
    assert upstream.calls == 2
    assert all(stream.closed for stream in upstream.streams)


async def test_an_error_status_before_the_first_event_is_retried() -> None:
    clock = FakeClock()
    upstream = ScriptedUpstream(error_reply(503, "busy"), sse_reply(*HAPPY))
    events, stream = await collect(make_client(upstream, clock), Deadline(45, clock))
    assert events == HAPPY
    assert stream.attempts == 2  # type: ignore[attr-defined]


async def test_an_error_event_before_the_first_chunk_is_an_upstream_error() -> None:
    clock = FakeClock()
    error = b'data: {"error": {"message": "provider exploded", "code": "500"}}\n\n'
    upstream = ScriptedUpstream(sse_reply(error), sse_reply(error), sse_reply(*HAPPY))
    with pytest.raises(UpstreamError, match="provider exploded"):
        await collect(make_client(upstream, clock), Deadline(45, clock))
    assert upstream.calls == 2  # a 500 is retried once, not more


@pytest.mark.parametrize(
    ("tail", "what"),
    [
        pytest.param([0.5, DONE], "sent nothing for 0.03 s", id="idle-timeout"),
        pytest.param([httpx.ReadError("connection reset")], "connection broke", id="cut"),
        pytest.param([b"data: {not json\n\n", DONE], "malformed event", id="malformed"),
        pytest.param([chunk("lo")], "without data: [DONE]", id="missing-done"),
        pytest.param([chunk("lo"), b'data: {"choi'], "without data: [DONE]", id="cut-mid-event"),
        pytest.param(
            [b'data: {"error": {"message": "quota gone"}}\n\n'], "quota gone", id="error-event"
        ),
    ],
)
async def test_failures_after_the_first_event_raise_stream_interrupted(
    tail: list[bytes | float | BaseException], what: str
) -> None:
    clock = FakeClock()
    upstream = ScriptedUpstream(sse_reply(chunk("Hel"), *tail))
    client = make_client(upstream, clock, idle_timeout=0.03)
    received: list[bytes] = []
    opened: list[RecoveringStream] = []
    with pytest.raises(StreamInterrupted, match="is incomplete") as raised:
        await drain(client, Deadline(45, clock), received, opened)
    assert what in raised.value.message
    assert received[0] == chunk("Hel")
    assert not opened[0].completed
    assert upstream.calls == 1  # never retried once bytes went to the client
    assert upstream.streams[0].closed


async def test_a_client_that_stops_reading_closes_the_upstream_response() -> None:
    clock = FakeClock()
    upstream = ScriptedUpstream(sse_reply(*HAPPY))
    client = make_client(upstream, clock)
    async with client.stream_chat(PAYLOAD, deadline=Deadline(45, clock)) as stream:
        async for _event in stream:
            break  # the client went away after one event
    assert upstream.streams[0].closed
    assert stream.text == "Hel"


async def test_a_stream_of_comments_before_data_keeps_them_in_order() -> None:
    clock = FakeClock()
    upstream = ScriptedUpstream(sse_reply(b": keep-alive\n\n", *HAPPY))
    events, _ = await collect(make_client(upstream, clock), Deadline(45, clock))
    assert events == [b": keep-alive\n\n", *HAPPY]


async def test_a_stream_reports_the_model_group_that_answered() -> None:
    clock = FakeClock()
    reply = sse_reply(*HAPPY)
    reply.headers["x-litellm-model-group"] = "secondary-model"
    upstream = ScriptedUpstream(reply)
    _, stream = await collect(make_client(upstream, clock), Deadline(45, clock))
    assert stream.model_used == "secondary-model"  # type: ignore[attr-defined]
    assert stream.provider_model == "gpt-4o-mini-2024-07-18"  # type: ignore[attr-defined]
