"""The outer layers: request ids, error bodies, body limits, drain refusals."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.support.app import app_client, running_services
from tests.support.edge_app import edge_app
from tests.support.logs import capture_json_logs
from tests.support.settings import make_settings

ERROR_KEYS = {"error", "message", "incident_id", "timestamp", "request_id"}
GENERATED_ID = re.compile(r"^req_[0-9a-f]{16}$")


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
async def client(tmp_path: Path, spans: InMemorySpanExporter) -> AsyncIterator[httpx.AsyncClient]:
    app = edge_app(make_settings(tmp_path, MAX_BODY_BYTES=2048), (SimpleSpanProcessor(spans),))
    async with app_client(app) as client:
        client.app = app  # type: ignore[attr-defined]
        yield client


async def test_a_valid_request_id_is_kept_and_returned(client: httpx.AsyncClient) -> None:
    response = await client.get("/livez", headers={"X-Request-ID": "caller-id.42:a_b"})
    assert response.headers["x-request-id"] == "caller-id.42:a_b"


@pytest.mark.parametrize(
    "hostile",
    [
        pytest.param("abc\r\nSet-Cookie: x=1", id="header-injection"),
        pytest.param("A" * 10_000, id="10KB"),
        pytest.param('{"level":"CRITICAL"}', id="json-fragment"),
        pytest.param("", id="empty"),
        pytest.param("id with spaces", id="spaces"),
    ],
)
async def test_a_hostile_request_id_is_replaced(client: httpx.AsyncClient, hostile: str) -> None:
    # httpx refuses to send CR/LF itself; put the raw bytes on the wire through the ASGI scope.
    response = await client.get("/livez", headers=[(b"x-request-id", hostile.encode())])
    assert GENERATED_ID.match(response.headers["x-request-id"])
    assert not hostile or hostile not in response.text


async def test_request_id_is_in_every_log_line_and_on_the_span(
    client: httpx.AsyncClient, spans: InMemorySpanExporter
) -> None:
    with capture_json_logs() as logs:
        response = await client.get("/test/slow", params={"seconds": 0})
    request_id = response.headers["x-request-id"]
    (access,) = logs.events("http_request")
    assert access["request_id"] == request_id
    assert access["status"] == 200
    assert access["route"] == "/test/slow"
    assert access["client"] == "127.0.0.1"
    assert access["duration_ms"] >= 0
    assert access["trace_id"] is not None
    server_spans = [s for s in spans.get_finished_spans() if s.attributes.get("request_id")]
    assert [s.attributes["request_id"] for s in server_spans] == [request_id]
    assert format(server_spans[0].context.trace_id, "032x") == access["trace_id"]


async def test_probe_paths_are_neither_traced_nor_access_logged(
    client: httpx.AsyncClient, spans: InMemorySpanExporter
) -> None:
    with capture_json_logs() as logs:
        for path in ("/livez", "/readyz", "/health", "/metrics"):
            assert (await client.get(path)).status_code == 200
    assert logs.events("http_request") == []
    assert spans.get_finished_spans() == ()


async def test_unknown_route_gets_the_standard_error_body(client: httpx.AsyncClient) -> None:
    response = await client.get("/no/such/route")
    assert response.status_code == 404
    body = response.json()
    assert body.keys() == ERROR_KEYS
    assert body["request_id"] == response.headers["x-request-id"]
    assert re.fullmatch(r"inc_[0-9a-f]{12}", body["incident_id"])


async def test_an_unexpected_exception_is_a_500_with_the_logged_incident_id(
    client: httpx.AsyncClient,
) -> None:
    with capture_json_logs() as logs:
        response = await client.get("/test/crash")
    assert response.status_code == 500
    body = response.json()
    assert body.keys() == ERROR_KEYS
    assert body["error"] == "GatewayError"
    assert "secret-looking" not in body["message"]
    (logged,) = logs.events("unhandled_exception")
    assert logged["level"] == "ERROR"
    assert logged["incident_id"] == body["incident_id"]
    assert logged["request_id"] == body["request_id"]
    assert "RuntimeError: simulated bug" in logged["exception"]


async def test_declared_oversized_body_is_refused_before_the_route_runs(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/test/echo", content=b"x" * 4096)
    assert response.status_code == 413
    assert response.json()["error"] == "PayloadTooLarge"
    assert response.headers["connection"] == "close"
    assert response.headers["x-request-id"]
    assert client.app.state.echo_calls == 0  # type: ignore[attr-defined]


async def test_chunked_oversized_body_is_refused_by_counting(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"y" * 1000

    response = await client.post("/test/echo", content=chunks())
    assert response.status_code == 413
    assert response.json()["error"] == "PayloadTooLarge"


async def test_chunked_body_within_the_limit_is_served(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"z" * 1000
        yield b"z" * 1000

    response = await client.post("/test/echo", content=chunks())
    assert response.status_code == 200
    assert response.json() == {"received": 2000}


async def test_a_drain_serves_open_connections_with_close_then_refuses_new_work(
    client: httpx.AsyncClient,
) -> None:
    # A request that reaches a draining worker came down a connection opened before the drain
    # (kube-proxy pins established connections to their pod): it is served, and told to close.
    app = client.app  # type: ignore[attr-defined]
    in_flight = asyncio.create_task(client.get("/test/slow", params={"seconds": 0.3}))
    while running_services(app).drain.in_flight == 0:
        await asyncio.sleep(0.01)
    with capture_json_logs() as logs:
        drained = asyncio.create_task(running_services(app).drain.drain("SIGTERM", timeout=5))
        await asyncio.sleep(0.05)
        during = await client.get("/test/slow", params={"seconds": 0})
        ready = await client.get("/readyz")
        live = await client.get("/livez")
        finished = await in_flight
        assert await drained is True
        running_services(app).drain.close("lifespan_shutdown")
        refused = await client.get("/test/slow", params={"seconds": 0})
    assert during.status_code == 200
    assert during.headers["connection"] == "close"
    assert ready.status_code == 503
    assert ready.json()["status"] == "draining"
    assert live.status_code == 200
    assert finished.status_code == 200
    assert finished.headers["connection"] == "close"
    assert refused.status_code == 503
    assert refused.json()["error"] == "ServiceDraining"
    assert refused.headers["retry-after"] == "1"
    assert refused.headers["connection"] == "close"
    events = [r["message"] for r in logs.records if r["logger"] == "llm_gateway.drain"]
    assert events == [
        "shutdown_signal_received",
        "waiting_for_in_flight_requests",
        "in_flight_request_completed",
        "in_flight_request_completed",
        "in_flight_requests_drained",
    ]


async def test_every_answer_is_counted_and_timed_by_route_template_and_status(
    client: httpx.AsyncClient,
) -> None:
    for seconds in (0, 0, 0):
        await client.get("/test/slow", params={"seconds": seconds})
    await client.get("/no/such/route")
    metrics = running_services(client.app).metrics  # type: ignore[attr-defined]
    assert metrics is not None
    registry = metrics.registry
    counted = registry.get_sample_value
    slow = {"method": "GET", "route": "/test/slow"}
    assert counted("http_requests_total", {**slow, "status": "200"}) == 3
    assert counted("http_request_duration_seconds_count", slow) == 3
    unmatched = {"method": "GET", "route": "unmatched", "status": "404"}
    assert counted("http_requests_total", unmatched) == 1
