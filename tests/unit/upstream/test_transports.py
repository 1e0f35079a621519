"""Every upstream adapter against a real (in-process, loopback) HTTP server: tracing, headers,
streams. `aiohttp` is the native adapter (the default); `httpx` runs httpx's own pool."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import orjson
import pytest
from aiohttp import web
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from llm_gateway.errors import StreamInterrupted
from llm_gateway.observability.context import request_id_var
from llm_gateway.resilience.breaker import CircuitBreakerRegistry
from llm_gateway.resilience.deadline import Deadline
from llm_gateway.resilience.retry import RetryPolicy
from llm_gateway.upstream.litellm import LiteLLMClient
from llm_gateway.upstream.stream import UpstreamStream
from tests.unit.upstream.scripted import ADAPTERS, API_KEY, completion, real_adapter

TRANSPORTS = ADAPTERS
CHUNK = b'data: {"model": "m-1", "choices": [{"index": 0, "delta": {"content": "x"}}]}\n\n'


@dataclass
class FakeLiteLLM:
    base_url: str = ""
    seen_headers: list[dict[str, str]] = field(default_factory=list)
    stream_endings: list[str] = field(default_factory=list)
    stall_after_first: bool = False


async def _chat(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    state.seen_headers.append(dict(request.headers))
    body = await request.json()
    if not body.get("stream"):
        return web.json_response(completion())
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    try:
        await response.write(CHUNK)
        for _ in range(200):  # ~2 s of events unless the client goes away
            await asyncio.sleep(10 if state.stall_after_first else 0.01)
            await response.write(CHUNK)
        await response.write(b"data: [DONE]\n\n")
        state.stream_endings.append("complete")
    except (ConnectionResetError, asyncio.CancelledError):
        state.stream_endings.append("client_closed")
        raise
    return response


STATE = web.AppKey("state", FakeLiteLLM)


@pytest.fixture
async def fake_litellm() -> AsyncIterator[FakeLiteLLM]:
    state = FakeLiteLLM()
    app = web.Application()
    app[STATE] = state
    app.router.add_post("/v1/chat/completions", _chat)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    state.base_url = f"http://127.0.0.1:{port}"
    yield state
    await runner.cleanup()


@pytest.fixture
def spans() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def make_client(
    base_url: str, kind: str, provider: TracerProvider, idle_timeout: float = 5.0
) -> LiteLLMClient:
    return LiteLLMClient(
        real_adapter(kind, base_url, provider=provider),
        api_key=API_KEY,
        retry=RetryPolicy(max_retries=0),
        breakers=CircuitBreakerRegistry(),
        request_timeout=5,
        stream_first_token_timeout=2,
        stream_idle_timeout=idle_timeout,
        models_cache_ttl=30,
    )


@pytest.mark.parametrize("kind", TRANSPORTS)
async def test_upstream_requests_carry_traceparent_and_request_id(
    kind: str,
    fake_litellm: FakeLiteLLM,
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = spans
    client = make_client(fake_litellm.base_url, kind, provider)
    token = request_id_var.set("req_00000000000000aa")
    try:
        with provider.get_tracer("test").start_as_current_span("gateway-request") as parent:
            result = await client.chat({"model": "m", "messages": []}, deadline=Deadline(5))
    finally:
        request_id_var.reset(token)
        await client.aclose()
    assert result.attempts == 1
    headers = {k.lower(): v for k, v in fake_litellm.seen_headers[0].items()}
    trace_id = format(parent.get_span_context().trace_id, "032x")
    assert headers["traceparent"].split("-")[1] == trace_id
    assert headers["x-request-id"] == "req_00000000000000aa"
    assert headers["authorization"] == f"Bearer {API_KEY}"
    client_spans = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.CLIENT]
    assert len(client_spans) == 1
    assert client_spans[0].parent is not None
    assert client_spans[0].parent.span_id == parent.get_span_context().span_id


@pytest.mark.parametrize("kind", TRANSPORTS)
async def test_a_client_leaving_mid_stream_closes_the_upstream_connection(
    kind: str,
    fake_litellm: FakeLiteLLM,
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    client = make_client(fake_litellm.base_url, kind, spans[0])
    try:
        payload = {"model": "m", "messages": []}
        async with client.stream_chat(payload, deadline=Deadline(5)) as stream:
            received = 0
            async for _event in stream:
                received += 1
                if received == 3:
                    break
        for _ in range(100):
            if fake_litellm.stream_endings:
                break
            await asyncio.sleep(0.01)
    finally:
        await client.aclose()
    assert fake_litellm.stream_endings == ["client_closed"]
    assert stream.model_used == "m-1"


@pytest.mark.parametrize("kind", TRANSPORTS)
async def test_a_stalled_stream_is_interrupted_by_the_idle_timeout(
    kind: str,
    fake_litellm: FakeLiteLLM,
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    fake_litellm.stall_after_first = True
    client = make_client(fake_litellm.base_url, kind, spans[0], idle_timeout=0.1)
    events: list[bytes] = []
    opened: list[UpstreamStream] = []

    async def read_all() -> None:
        payload = {"model": "m", "messages": []}
        async with client.stream_chat(payload, deadline=Deadline(5)) as stream:
            opened.append(stream)
            async for event in stream:
                events.append(event)

    try:
        with pytest.raises(StreamInterrupted, match=r"sent nothing for 0\.1 s"):
            await read_all()
    finally:
        await client.aclose()
    assert events == [CHUNK]
    assert orjson.loads(CHUNK[6:])["model"] == opened[0].model_used
