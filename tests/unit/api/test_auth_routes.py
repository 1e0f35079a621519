"""The /auth routes and the shared principal dependencies, on a small app driven over ASGI."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request

from llm_gateway.api.deps import AdminPrincipal, CurrentPrincipal, LimitedPrincipal
from llm_gateway.app import create_app
from llm_gateway.auth.api_keys import generate_api_key, hash_api_key
from llm_gateway.auth.passwords import hash_password
from llm_gateway.auth.users import UserRecord
from tests.support.app import app_client
from tests.support.logs import capture_json_logs
from tests.support.settings import make_settings

SECRET = "route-test-signing-key-0123456789abcdef"
ERROR_KEYS = {"error", "message", "incident_id", "timestamp", "request_id"}
SERVICE_KEY = generate_api_key()
PASSWORDS = {"alice": "alice-password-1", "root": "root-password-1"}
USERS = [
    UserRecord("alice", hash_password(PASSWORDS["alice"]), "user"),
    UserRecord("root", hash_password(PASSWORDS["root"]), "admin"),
]
log = logging.getLogger("tests.auth_routes")


def build_app(
    tmp_path: Path, *, login_limit: str = "3/minute", request_limit: str = "100/minute"
) -> FastAPI:
    """The real app, configured with these users, one API key and these limits."""
    keys_file = tmp_path / "api-keys.json"
    keys_file.write_text(
        json.dumps([{"name": "batch-jobs", "key_hash": hash_api_key(SERVICE_KEY), "role": "user"}])
    )
    users = [
        {"username": u.username, "password_hash": u.password_hash, "role": u.role} for u in USERS
    ]
    settings = make_settings(
        tmp_path,
        JWT_SECRET_KEY=SECRET,
        USERS_JSON=json.dumps(users),
        API_KEYS_FILE=str(keys_file),
        RATE_LIMIT_ENABLED="true",
        RATE_LIMIT_STORAGE_URI="memory://",
        RATE_LIMIT_LOGIN=login_limit,
        RATE_LIMIT_USER=request_limit,
        RATE_LIMIT_IP="100/minute",
    )
    app = create_app(settings)

    @app.get("/probe/limited")
    async def limited(request: Request, principal: LimitedPrincipal) -> dict[str, str | None]:
        log.info("limited_route_called")
        return {"subject": principal.subject, "state_user": request.state.user}

    @app.get("/probe/admin")
    async def admin(principal: AdminPrincipal) -> dict[str, str]:
        return {"subject": principal.subject}

    @app.get("/probe/current")
    async def current(principal: CurrentPrincipal) -> dict[str, str]:
        return {"subject": principal.subject}

    return app


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(build_app(tmp_path)) as client:
        yield client


async def login(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await client.post("/auth/login", json={"username": username, "password": password})


async def token_for(client: httpx.AsyncClient, username: str) -> str:
    response = await login(client, username, PASSWORDS[username])
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def assert_error_body(response: httpx.Response, status: int, error: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body.keys() >= ERROR_KEYS
    assert body["error"] == error
    assert re.fullmatch(r"inc_[0-9a-f]{12}", body["incident_id"])
    assert body["request_id"] == response.headers["x-request-id"]
    return dict(body)


async def test_login_returns_a_bearer_token_and_the_user(client: httpx.AsyncClient) -> None:
    with capture_json_logs() as logs:
        response = await login(client, "alice", PASSWORDS["alice"])
    assert response.status_code == 200
    body = response.json()
    assert body.keys() == {"access_token", "token_type", "expires_in", "user"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    assert body["user"] == {"username": "alice", "role": "user"}
    (event,) = logs.events("login_succeeded")
    assert event["username"] == "alice"
    assert PASSWORDS["alice"] not in "\n".join(logs.raw_lines)


@pytest.mark.parametrize(
    ("username", "password"),
    [
        pytest.param("alice", "wrong-password", id="wrong-password"),
        pytest.param("mallory", "alice-password-1", id="unknown-user"),
    ],
)
async def test_a_failed_login_is_one_indistinct_401(
    client: httpx.AsyncClient, username: str, password: str
) -> None:
    with capture_json_logs() as logs:
        response = await login(client, username, password)
    body = assert_error_body(response, 401, "AuthenticationFailed")
    assert body["message"] == "Invalid username or password"
    assert response.headers["www-authenticate"] == "Bearer"
    (event,) = logs.events("login_failed")
    assert event["username"] == username
    assert password not in "\n".join(logs.raw_lines)


async def test_a_login_without_a_password_is_a_400_with_the_field(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/auth/login", json={"username": "alice"})
    body = assert_error_body(response, 400, "InvalidRequest")
    assert {"field": "password", "message": "Field required"} in body["fields"]  # type: ignore[operator]


async def test_me_returns_the_caller_of_a_token(client: httpx.AsyncClient) -> None:
    token = await token_for(client, "root")
    response = await client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.json() == {"username": "root", "role": "admin", "kind": "user"}


async def test_me_returns_the_service_behind_an_api_key(client: httpx.AsyncClient) -> None:
    response = await client.get("/auth/me", headers={"X-API-Key": SERVICE_KEY})
    assert response.json() == {"username": "batch-jobs", "role": "user", "kind": "api_key"}


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        pytest.param({}, "Missing credentials", id="no-token"),
        pytest.param({"Authorization": "Bearer abc.def.ghi"}, "malformed", id="garbage-token"),
        pytest.param({"Authorization": "Basic YTpi"}, "must be 'Bearer", id="basic-auth"),
        pytest.param({"X-API-Key": "lgw_nope"}, "API key is not recognised", id="unknown-key"),
    ],
)
async def test_me_without_a_valid_credential_is_401(
    client: httpx.AsyncClient, headers: dict[str, str], message: str
) -> None:
    response = await client.get("/auth/me", headers=headers)
    body = assert_error_body(response, 401, "AuthenticationFailed")
    assert message in str(body["message"])
    assert response.headers["www-authenticate"] == "Bearer"


async def test_login_brute_force_is_stopped_with_429_before_the_password_is_checked(
    client: httpx.AsyncClient,
) -> None:
    for _ in range(3):
        assert (await login(client, "alice", "guess")).status_code == 401
    # Even the right password is refused now: the limit is checked before verification.
    response = await login(client, "alice", PASSWORDS["alice"])
    body = assert_error_body(response, 429, "RateLimited")
    assert 1 <= int(response.headers["retry-after"]) <= 60
    assert response.headers["x-ratelimit-limit"] == "3"
    assert response.headers["x-ratelimit-remaining"] == "0"
    assert int(response.headers["x-ratelimit-reset"]) > 0
    assert "per address and username" in str(body["message"])


async def test_a_forged_forwarded_for_does_not_escape_the_address_limit(
    client: httpx.AsyncClient,
) -> None:
    # No trusted proxies: X-Forwarded-For is the client's own claim and is ignored.
    statuses = []
    for number in range(4):
        response = await client.post(
            "/auth/login",
            json={"username": f"user{number}", "password": "guess"},
            headers={"X-Forwarded-For": f"203.0.113.{number}"},
        )
        statuses.append(response.status_code)
    assert statuses == [401, 401, 401, 429]


async def test_admin_routes_refuse_a_plain_user_with_403(client: httpx.AsyncClient) -> None:
    user_token = await token_for(client, "alice")
    admin_token = await token_for(client, "root")
    refused = await client.get("/probe/admin", headers={"Authorization": f"Bearer {user_token}"})
    assert_error_body(refused, 403, "PermissionDenied")
    allowed = await client.get("/probe/admin", headers={"Authorization": f"Bearer {admin_token}"})
    assert allowed.json() == {"subject": "root"}


async def test_a_limited_route_names_the_user_in_state_logs_and_rate_headers(
    client: httpx.AsyncClient,
) -> None:
    token = await token_for(client, "alice")
    with capture_json_logs() as logs:
        response = await client.get("/probe/limited", headers={"Authorization": f"Bearer {token}"})
    assert response.json() == {"subject": "alice", "state_user": "alice"}
    assert response.headers["x-ratelimit-limit"] == "100"
    assert response.headers["x-ratelimit-remaining"] == "99"
    (line,) = logs.events("limited_route_called")
    assert line["user"] == "alice"
    (access,) = logs.events("http_request")
    assert access["user"] == "alice"
    assert access["path"] == "/probe/limited"


async def test_a_limited_route_answers_429_past_the_per_user_limit(tmp_path: Path) -> None:
    async with app_client(build_app(tmp_path, request_limit="2/minute")) as client:
        headers = {"X-API-Key": SERVICE_KEY}
        assert (await client.get("/probe/limited", headers=headers)).status_code == 200
        assert (await client.get("/probe/limited", headers=headers)).status_code == 200
        refused = await client.get("/probe/limited", headers=headers)
        assert_error_body(refused, 429, "RateLimited")
        assert int(refused.headers["retry-after"]) >= 1
        # Authentication alone does not count: a route without the limit still answers.
        assert (await client.get("/probe/current", headers=headers)).status_code == 200


def test_the_auth_routes_are_documented_in_openapi(tmp_path: Path) -> None:
    paths = build_app(tmp_path).openapi()["paths"]
    login_schema = paths["/auth/login"]["post"]["requestBody"]["content"]["application/json"]
    assert login_schema["schema"]["$ref"].endswith("/LoginRequest")
    assert "200" in paths["/auth/me"]["get"]["responses"]
