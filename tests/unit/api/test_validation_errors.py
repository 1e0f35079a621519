"""Invalid requests answer 400 (as OpenAI's API does), with a message a person can act on:
the flat error body on /llm/generate and /generate, OpenAI's error shape on /v1/*."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from llm_gateway.app import AppOverrides, create_app
from llm_gateway.auth.passwords import hash_password
from tests.support.app import app_client
from tests.support.settings import make_settings

FLAT_KEYS = {"error", "message", "incident_id", "timestamp", "request_id"}
USERS = orjson.dumps(
    [{"username": "alice", "password_hash": hash_password("alice-pw"), "role": "user"}]
).decode()


def never_called(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"an invalid request reached the upstream: {request.url}")


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(tmp_path, USERS_JSON=USERS, PROMPT_MAX_CHARS="200")
    app = create_app(settings, AppOverrides(upstream_transport=httpx.MockTransport(never_called)))
    async with app_client(app) as http:
        login = await http.post("/auth/login", json={"username": "alice", "password": "alice-pw"})
        http.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
        yield http


async def post_raw(client: httpx.AsyncClient, path: str, body: bytes) -> httpx.Response:
    return await client.post(path, content=body, headers={"Content-Type": "application/json"})


@pytest.mark.parametrize("path", ["/llm/generate", "/generate"])
async def test_a_malformed_json_body_is_a_400_that_says_so_with_no_fake_field(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await post_raw(client, path, b'{"prompt": "Hel')
    assert response.status_code == 400
    body = response.json()
    assert body.keys() >= FLAT_KEYS
    assert body["error"] == "InvalidRequest"
    assert body["message"] == (
        "The request body is not valid JSON (at character 11: Unterminated string starting at)"
    )
    assert "fields" not in body
    assert body["request_id"] == response.headers["x-request-id"]


@pytest.mark.parametrize(
    ("payload", "message", "fields"),
    [
        pytest.param(
            {"prompt": "x", "temperature": 3},
            "The request body failed validation: temperature: "
            "Input should be less than or equal to 2",
            ["temperature"],
            id="temperature-out-of-range",
        ),
        pytest.param(
            {"prompt": 123},
            "The request body failed validation: prompt: Input should be a valid string",
            ["prompt"],
            id="wrong-field-type",
        ),
        pytest.param(
            {"prompt": ""},
            "The request body failed validation: prompt: String should have at least 1 character",
            ["prompt"],
            id="empty-prompt",
        ),
        pytest.param(
            {"prompt": "x" * 201},
            "The request body failed validation: prompt: "
            "the prompt has 201 characters; the limit is 200",
            ["prompt"],
            id="guard-limit",
        ),
    ],
)
async def test_an_invalid_parameter_on_generate_is_a_400_with_the_flat_body_and_its_fields(
    client: httpx.AsyncClient, payload: dict[str, Any], message: str, fields: list[str]
) -> None:
    response = await client.post("/llm/generate", json=payload)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body.keys() >= FLAT_KEYS | {"fields"}
    assert body["error"] == "InvalidRequest"
    assert body["message"] == message
    assert [problem["field"] for problem in body["fields"]] == fields


CHAT = {"model": "smart-router", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(
    ("body", "message", "param"),
    [
        pytest.param(
            b'{"model": "smart-router", "messages": [',
            "The request body is not valid JSON (at character 39: Expecting value)",
            None,
            id="malformed-json",
        ),
        pytest.param(
            orjson.dumps({**CHAT, "temperature": 3}),
            "The request body failed validation: temperature: "
            "Input should be less than or equal to 2",
            "temperature",
            id="temperature-out-of-range",
        ),
        pytest.param(
            orjson.dumps({**CHAT, "messages": "hi"}),
            "The request body failed validation: messages: Input should be a valid list",
            "messages",
            id="wrong-field-type",
        ),
    ],
)
async def test_an_invalid_chat_completion_is_a_400_in_openai_error_shape(
    client: httpx.AsyncClient, body: bytes, message: str, param: str | None
) -> None:
    response = await post_raw(client, "/v1/chat/completions", body)
    assert response.status_code == 400, response.text
    error = response.json()
    assert error.keys() == {"error"}
    assert error["error"]["message"] == message
    assert error["error"]["type"] == "invalid_request_error"
    assert error["error"]["param"] == param
    assert error["error"]["code"] is None
    assert error["error"]["request_id"] == response.headers["x-request-id"]
    assert error["error"]["incident_id"].startswith("inc_")


async def test_the_openai_sdk_raises_its_bad_request_error_with_the_gateways_message(
    client: httpx.AsyncClient,
) -> None:
    from openai import AsyncOpenAI, BadRequestError

    token = client.headers["Authorization"].removeprefix("Bearer ")
    sdk = AsyncOpenAI(base_url="http://gateway/v1", api_key=token, http_client=client)
    with pytest.raises(BadRequestError) as caught:
        await sdk.chat.completions.create(
            model="smart-router", messages=[{"role": "user", "content": "hi"}], temperature=3
        )
    assert caught.value.status_code == 400
    assert caught.value.param == "temperature"
    assert caught.value.type == "invalid_request_error"
    assert "temperature: Input should be less than or equal to 2" in caught.value.message
