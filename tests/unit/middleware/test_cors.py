"""CORS is the outermost layer: answers that inner layers give on their own still carry its
headers, so a browser on an allowed origin can read the refusal instead of an opaque failure."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.support.app import app_client, running_services
from tests.support.edge_app import edge_app
from tests.support.settings import make_settings

ORIGIN = "https://app.example"


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(tmp_path, MAX_BODY_BYTES=2048, CORS_ORIGINS=ORIGIN)
    app = edge_app(settings)
    async with app_client(app) as client:
        client.app = app  # type: ignore[attr-defined]
        yield client


def assert_readable_by_the_origin(response: httpx.Response) -> None:
    assert response.headers.get("access-control-allow-origin") == ORIGIN
    exposed = response.headers.get("access-control-expose-headers", "")
    assert "X-Request-ID" in exposed


async def test_the_drain_503_carries_cors_headers(client: httpx.AsyncClient) -> None:
    running_services(client.app).drain.close("lifespan_shutdown")  # type: ignore[attr-defined]
    response = await client.get("/test/slow", params={"seconds": 0}, headers={"Origin": ORIGIN})
    assert response.status_code == 503
    assert response.json()["error"] == "ServiceDraining"
    assert_readable_by_the_origin(response)


async def test_the_body_limit_413_carries_cors_headers(client: httpx.AsyncClient) -> None:
    response = await client.post("/test/echo", content=b"x" * 4096, headers={"Origin": ORIGIN})
    assert response.status_code == 413
    assert response.json()["error"] == "PayloadTooLarge"
    assert_readable_by_the_origin(response)


async def test_the_error_layer_500_carries_cors_headers(client: httpx.AsyncClient) -> None:
    response = await client.get("/test/crash", headers={"Origin": ORIGIN})
    assert response.status_code == 500
    assert response.json()["error"] == "GatewayError"
    assert_readable_by_the_origin(response)


async def test_a_route_answer_still_carries_cors_headers(client: httpx.AsyncClient) -> None:
    response = await client.get("/livez", headers={"Origin": ORIGIN})
    assert response.status_code == 200
    assert_readable_by_the_origin(response)


async def test_another_origin_gets_no_cors_headers(client: httpx.AsyncClient) -> None:
    response = await client.get("/livez", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in response.headers
