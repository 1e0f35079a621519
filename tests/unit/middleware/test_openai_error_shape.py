"""On /v1/* every error, the early answers of the middleware included, is in OpenAI's shape."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.app import app_client, running_services
from tests.support.edge_app import edge_app
from tests.support.settings import make_settings

OPENAI_ERROR_KEYS = {"message", "type", "param", "code", "incident_id", "request_id"}


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = edge_app(make_settings(tmp_path, MAX_BODY_BYTES=2048))
    async with app_client(app) as client:
        client.app = app  # type: ignore[attr-defined]
        yield client


def openai_error(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert body.keys() == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert error.keys() == OPENAI_ERROR_KEYS
    assert error["request_id"] == response.headers["x-request-id"]
    assert re.fullmatch(r"inc_[0-9a-f]{12}", error["incident_id"])
    return error


async def test_an_unknown_v1_route_is_a_404_in_openai_shape(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/no-such-route")
    assert response.status_code == 404
    assert openai_error(response)["type"] == "not_found_error"


async def test_an_unexpected_exception_on_v1_is_a_500_in_openai_shape(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/v1/test/crash")
    assert response.status_code == 500
    error = openai_error(response)
    assert (error["type"], error["code"]) == ("server_error", "internal_error")
    assert "secret-looking" not in error["message"]
    flat = await client.get("/test/crash")
    assert flat.json()["error"] == "GatewayError"  # other paths keep the flat shape


async def test_the_body_limit_on_v1_answers_413_in_openai_shape(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/chat/completions", content=b"x" * 4096)
    assert response.status_code == 413
    assert response.headers["connection"] == "close"
    error = openai_error(response)
    assert (error["type"], error["code"]) == ("invalid_request_error", "payload_too_large")


async def test_a_closed_drain_on_v1_answers_503_in_openai_shape(client: httpx.AsyncClient) -> None:
    running_services(client.app).drain.close("lifespan_shutdown")  # type: ignore[attr-defined]
    response = await client.get("/v1/models")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    error = openai_error(response)
    assert (error["type"], error["code"]) == ("server_error", "service_draining")
