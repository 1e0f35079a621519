"""Tracing on with no exporter: every request still has a trace context, none is recorded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from opentelemetry import propagate, trace

from llm_gateway.middleware.trace_context import TraceContextMiddleware
from tests.support.app import app_client
from tests.support.edge_app import edge_app
from tests.support.logs import capture_json_logs
from tests.support.settings import make_settings

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


class SeenContext:
    """An inner app that records the span and the headers it would send downstream."""

    def __init__(self) -> None:
        self.spans: list[trace.Span] = []
        self.outgoing: list[dict[str, str]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.spans.append(trace.get_current_span())
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        self.outgoing.append(carrier)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def call(app: Any, path: str, headers: list[tuple[bytes, bytes]]) -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        pass

    scope = {"type": "http", "method": "GET", "path": path, "headers": headers}
    await app(scope, receive, send)


async def test_a_request_without_trace_headers_gets_a_fresh_unsampled_trace() -> None:
    inner = SeenContext()
    app = TraceContextMiddleware(inner)
    await call(app, "/v1/chat/completions", [])
    await call(app, "/v1/chat/completions", [])
    first, second = (span.get_span_context() for span in inner.spans)
    assert first.is_valid and second.is_valid
    assert first.trace_id != second.trace_id
    assert not first.trace_flags.sampled
    assert not inner.spans[0].is_recording()
    assert inner.outgoing[0]["traceparent"] == (f"00-{first.trace_id:032x}-{first.span_id:016x}-00")
    # Nothing leaks out of the request's context.
    assert not trace.get_current_span().get_span_context().is_valid


@pytest.mark.parametrize("flags", [pytest.param("01", id="sampled"), pytest.param("00", id="not")])
async def test_a_callers_traceparent_continues_its_trace_and_sampling_decision(flags: str) -> None:
    inner = SeenContext()
    app = TraceContextMiddleware(inner)
    traceparent = f"00-{CALLER_TRACE}-{CALLER_SPAN}-{flags}"
    headers = [(b"traceparent", traceparent.encode()), (b"baggage", b"tenant=blue")]
    await call(app, "/v1/chat/completions", headers)
    context = inner.spans[0].get_span_context()
    assert f"{context.trace_id:032x}" == CALLER_TRACE
    assert f"{context.span_id:016x}" != CALLER_SPAN
    outgoing = inner.outgoing[0]
    assert outgoing["traceparent"] == f"00-{CALLER_TRACE}-{context.span_id:016x}-{flags}"
    assert outgoing["baggage"] == "tenant=blue"


async def test_a_malformed_traceparent_starts_a_new_trace() -> None:
    inner = SeenContext()
    app = TraceContextMiddleware(inner)
    await call(app, "/v1/chat/completions", [(b"traceparent", b"00-zz-not-a-trace")])
    assert inner.spans[0].get_span_context().is_valid


async def test_untraced_paths_get_no_trace_context() -> None:
    inner = SeenContext()
    app = TraceContextMiddleware(inner, untraced_paths=["/livez"])
    await call(app, "/livez", [(b"traceparent", f"00-{CALLER_TRACE}-{CALLER_SPAN}-01".encode())])
    assert not inner.spans[0].get_span_context().is_valid
    assert inner.outgoing == [{}]


async def test_the_app_with_no_exporter_logs_the_callers_trace_id(tmp_path: Path) -> None:
    app = edge_app(make_settings(tmp_path, TRACING_ENABLED="true", OTEL_EXPORTER="none"))
    async with app_client(app) as client:
        with capture_json_logs() as logs:
            await client.get(
                "/test/slow",
                params={"seconds": 0},
                headers={"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"},
            )
            await client.get("/test/slow", params={"seconds": 0})
    first, second = logs.events("http_request")
    assert first["trace_id"] == CALLER_TRACE
    assert first["span_id"] not in (None, CALLER_SPAN)
    assert second["trace_id"] not in (None, CALLER_TRACE)
