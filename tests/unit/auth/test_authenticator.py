"""Which request headers prove who is calling."""

from __future__ import annotations

import pytest

from llm_gateway.auth.api_keys import ApiKeyRecord, ApiKeyStore, generate_api_key, hash_api_key
from llm_gateway.auth.authenticator import Authenticator
from llm_gateway.auth.principal import Principal
from llm_gateway.auth.tokens import TokenService
from llm_gateway.errors import AuthenticationFailed

SECRET = "authenticator-test-key-0123456789abcdef"
SERVICE_KEY = generate_api_key()
ALICE = Principal(subject="alice", role="user", kind="user")
SERVICE = Principal(subject="batch-jobs", role="admin", kind="api_key")


@pytest.fixture
def tokens() -> TokenService:
    return TokenService(SECRET, "HS256", "llm-gateway", "llm-gateway", 3600)


@pytest.fixture
def authenticator(tokens: TokenService) -> Authenticator:
    store = ApiKeyStore([ApiKeyRecord("batch-jobs", hash_api_key(SERVICE_KEY), "admin")])
    return Authenticator(tokens, store)


def test_a_bearer_jwt_authenticates_its_user(
    authenticator: Authenticator, tokens: TokenService
) -> None:
    token = tokens.issue(ALICE).access_token
    assert authenticator.authenticate(f"Bearer {token}", None) == ALICE


def test_the_bearer_scheme_is_case_insensitive(
    authenticator: Authenticator, tokens: TokenService
) -> None:
    token = tokens.issue(ALICE).access_token
    assert authenticator.authenticate(f"bearer {token}", None) == ALICE


def test_a_bearer_api_key_authenticates_the_service(authenticator: Authenticator) -> None:
    # What the OpenAI SDK sends when the service key is its api_key.
    assert authenticator.authenticate(f"Bearer {SERVICE_KEY}", None) == SERVICE


def test_an_x_api_key_header_authenticates_the_service(authenticator: Authenticator) -> None:
    assert authenticator.authenticate(None, SERVICE_KEY) == SERVICE


def test_authorization_wins_over_x_api_key(
    authenticator: Authenticator, tokens: TokenService
) -> None:
    token = tokens.issue(ALICE).access_token
    assert authenticator.authenticate(f"Bearer {token}", SERVICE_KEY) == ALICE


@pytest.mark.parametrize(
    ("authorization", "api_key", "message"),
    [
        pytest.param(None, None, "Missing credentials", id="nothing"),
        pytest.param("", "  ", "Missing credentials", id="blank-headers"),
        pytest.param("Basic YWxpY2U6cHc=", None, "must be 'Bearer <token>'", id="basic-scheme"),
        pytest.param("Bearer", None, "must be 'Bearer <token>'", id="bearer-without-token"),
        pytest.param("Bearer a b", None, "must be 'Bearer <token>'", id="two-tokens"),
        pytest.param("Token abc", None, "must be 'Bearer <token>'", id="other-scheme"),
        pytest.param("Bearer not-a-jwt", None, "Token is malformed", id="garbage-bearer"),
        pytest.param(
            f"Bearer lgw_{'x' * 43}", None, "API key is not recognised", id="unknown-bearer-key"
        ),
        pytest.param(None, f"lgw_{'y' * 43}", "API key is not recognised", id="unknown-x-api-key"),
    ],
)
def test_missing_or_bad_credentials_are_refused(
    authenticator: Authenticator, authorization: str | None, api_key: str | None, message: str
) -> None:
    with pytest.raises(AuthenticationFailed, match=message) as caught:
        authenticator.authenticate(authorization, api_key)
    assert caught.value.response_headers()["WWW-Authenticate"] == "Bearer"
