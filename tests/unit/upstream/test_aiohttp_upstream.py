"""AiohttpUpstream against real loopback servers: what it sends, hands back, and how it fails."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased
from opentelemetry.trace import SpanKind, StatusCode

from llm_gateway.upstream.aiohttp_upstream import AiohttpUpstream
from llm_gateway.upstream.port import ConnectFailed, ConnectionBroken, TransportTimeout
from tests.support.processes import free_port
from tests.unit.upstream.rawserver import raw_server


@dataclass
class Seen:
    url: str = ""
    requests: list[tuple[str, str, bytes, dict[str, str], int]] = field(default_factory=list)
    release_second_chunk: asyncio.Event = field(default_factory=asyncio.Event)


SEEN = web.AppKey("seen", Seen)


async def _echo(request: web.Request) -> web.Response:
    seen = request.app[SEEN]
    peer_port = request.transport.get_extra_info("peername")[1] if request.transport else 0
    body = await request.read()
    seen.requests.append((request.method, request.path, body, dict(request.headers), peer_port))
    return web.Response(status=201, body=b"made:" + body, headers={"X-LiteLLM-Model-Id": "dep-1"})


async def _chunks(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    await response.write(b"data: one\n\n")
    # The second chunk is only sent once the client has the first: proof of chunk-by-chunk.
    await request.app[SEEN].release_second_chunk.wait()
    await response.write(b"data: two\n\n")
    await response.write_eof()
    return response


@pytest.fixture
async def server() -> AsyncIterator[Seen]:
    seen = Seen()
    app = web.Application()
    app[SEEN] = seen
    app.router.add_route("*", "/echo", _echo)
    app.router.add_post("/chunks", _chunks)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    seen.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield seen
    await runner.cleanup()


def make(
    url: str, *, read_timeout: float = 5, provider: TracerProvider | None = None
) -> AiohttpUpstream:
    return AiohttpUpstream(
        url, connect_timeout=2, read_timeout=read_timeout, max_connections=4,
        tracer_provider=provider,
    )  # fmt: skip


async def test_send_returns_status_case_insensitive_headers_and_the_body(server: Seen) -> None:
    upstream = make(server.url + "/")  # a trailing slash on the base URL is harmless
    try:
        response = await upstream.send("POST", "/echo", b'{"a": 1}', {"X-Request-ID": "req_1"})
    finally:
        await upstream.aclose()
    assert response.status == 201
    assert response.headers["x-litellm-model-id"] == "dep-1"
    assert response.headers.get("X-LITELLM-MODEL-ID") == "dep-1"
    assert response.content == b'made:{"a": 1}'
    method, path, body, headers, _ = server.requests[0]
    assert (method, path, body) == ("POST", "/echo", b'{"a": 1}')
    assert headers["X-Request-ID"] == "req_1"
    assert headers["User-Agent"] == "llm-gateway"
    assert "traceparent" not in headers  # no tracer provider: nothing injected


async def test_requests_reuse_one_pooled_connection(server: Seen) -> None:
    upstream = make(server.url)
    try:
        for _ in range(3):
            await upstream.send("GET", "/echo", None, {})
    finally:
        await upstream.aclose()
    assert len({peer_port for *_, peer_port in server.requests}) == 1


async def test_a_stream_hands_over_each_chunk_as_it_arrives(server: Seen) -> None:
    upstream = make(server.url)
    try:
        response = await upstream.open_stream("POST", "/chunks", b"{}", {})
        chunks = response.aiter_bytes()
        first = await anext(chunks)
        server.release_second_chunk.set()
        rest = [chunk async for chunk in chunks]
        await response.aclose()
    finally:
        await upstream.aclose()
    assert response.status == 200
    assert response.headers["content-type"] == "text/event-stream"
    assert first == b"data: one\n\n"
    assert b"".join(rest) == b"data: two\n\n"


async def test_a_refused_connection_is_connect_failed() -> None:
    upstream = make(f"http://127.0.0.1:{free_port()}")
    try:
        with pytest.raises(ConnectFailed, match="ClientConnectorError") as caught:
            await upstream.send("POST", "/v1/chat/completions", b"{}", {})
    finally:
        await upstream.aclose()
    assert isinstance(caught.value.__cause__, aiohttp.ClientConnectorError)


async def test_a_body_cut_short_is_connection_broken() -> None:
    async with raw_server(lambda _: "cut_body") as server:
        upstream = make(server.url)
        try:
            with pytest.raises(ConnectionBroken, match="ClientPayloadError"):
                await upstream.send("POST", "/v1/chat/completions", b"{}", {})
            response = await upstream.open_stream("POST", "/v1/chat/completions", b"{}", {})
            with pytest.raises(ConnectionBroken):
                async for _ in response.aiter_bytes():
                    pass
            await response.aclose()
        finally:
            await upstream.aclose()


async def test_a_server_that_hangs_up_without_answering_is_connection_broken() -> None:
    async with raw_server(lambda _: "hang_up") as server:
        upstream = make(server.url)
        try:
            with pytest.raises(ConnectionBroken, match="ServerDisconnectedError"):
                await upstream.send("POST", "/v1/chat/completions", b"{}", {})
        finally:
            await upstream.aclose()


async def test_a_stalled_answer_is_a_transport_timeout_after_the_read_timeout() -> None:
    async with raw_server(lambda _: "stall") as server:
        upstream = make(server.url, read_timeout=0.05)
        try:
            with pytest.raises(TransportTimeout):
                await upstream.send("POST", "/v1/chat/completions", b"{}", {})
        finally:
            await upstream.aclose()


async def test_after_aclose_requests_raise() -> None:
    upstream = make("http://127.0.0.1:9")
    await upstream.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await upstream.send("GET", "/health/liveliness", None, {})


def provider_with(exporter: InMemorySpanExporter, *, recording: bool) -> TracerProvider:
    provider = TracerProvider(sampler=None if recording else ParentBased(ALWAYS_OFF))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


async def test_with_a_recording_parent_a_client_span_is_sent_as_traceparent(server: Seen) -> None:
    exporter = InMemorySpanExporter()
    provider = provider_with(exporter, recording=True)
    upstream = make(server.url, provider=provider)
    try:
        with provider.get_tracer("test").start_as_current_span("gateway-request") as parent:
            await upstream.send("POST", "/echo", b"{}", {})
    finally:
        await upstream.aclose()
    (client,) = [span for span in exporter.get_finished_spans() if span.kind == SpanKind.CLIENT]
    assert client.name == "POST /echo"
    assert client.parent is not None
    assert client.parent.span_id == parent.get_span_context().span_id
    assert client.attributes is not None
    assert client.attributes["http.response.status_code"] == 201
    assert client.attributes["url.full"] == server.url + "/echo"
    assert client.status.status_code == StatusCode.UNSET
    traceparent = server.requests[0][3]["traceparent"]
    _, trace_id, span_id, _ = traceparent.split("-")
    assert trace_id == format(client.context.trace_id, "032x")
    assert span_id == format(client.context.span_id, "016x")  # LiteLLM's span hangs off ours


async def test_a_failed_exchange_ends_its_client_span_as_an_error() -> None:
    exporter = InMemorySpanExporter()
    provider = provider_with(exporter, recording=True)
    upstream = make(f"http://127.0.0.1:{free_port()}", provider=provider)
    try:
        with (
            provider.get_tracer("test").start_as_current_span("gateway-request"),
            pytest.raises(ConnectFailed),
        ):
            await upstream.send("POST", "/v1/chat/completions", b"{}", {})
    finally:
        await upstream.aclose()
    (client,) = [span for span in exporter.get_finished_spans() if span.kind == SpanKind.CLIENT]
    assert client.status.status_code == StatusCode.ERROR
    assert client.attributes is not None
    assert client.attributes["error.type"] == "ClientConnectorError"


async def test_with_a_non_recording_parent_only_the_traceparent_travels(server: Seen) -> None:
    exporter = InMemorySpanExporter()
    provider = provider_with(exporter, recording=False)
    upstream = make(server.url, provider=provider)
    try:
        with provider.get_tracer("test").start_as_current_span("gateway-request") as parent:
            assert not parent.is_recording()
            await upstream.send("POST", "/echo", b"{}", {})
    finally:
        await upstream.aclose()
    assert exporter.get_finished_spans() == ()
    _, trace_id, span_id, flags = server.requests[0][3]["traceparent"].split("-")
    assert trace_id == format(parent.get_span_context().trace_id, "032x")
    assert span_id == format(parent.get_span_context().span_id, "016x")
    assert int(flags, 16) & 1 == 0  # not sampled: LiteLLM need not record either
