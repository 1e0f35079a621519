"""Turns the credential headers of a request into a Principal.

Accepted, in this order:
- `Authorization: Bearer <jwt>` (from POST /auth/login);
- `Authorization: Bearer lgw_...`: a service API key, so the OpenAI SDK works with the key as
  its `api_key`;
- `X-API-Key: lgw_...`.
Anything else is AuthenticationFailed (401 + `WWW-Authenticate: Bearer`).
"""

from __future__ import annotations

from llm_gateway.auth.api_keys import API_KEY_PREFIX, ApiKeyStore
from llm_gateway.auth.principal import Principal
from llm_gateway.auth.tokens import TokenService
from llm_gateway.errors import AuthenticationFailed

MISSING_CREDENTIALS = (
    "Missing credentials: send 'Authorization: Bearer <token>' with the access_token from "
    "POST /auth/login, or a service API key"
)


class Authenticator:
    def __init__(self, tokens: TokenService, api_keys: ApiKeyStore) -> None:
        self._tokens = tokens
        self._api_keys = api_keys

    def authenticate(self, authorization: str | None, api_key_header: str | None) -> Principal:
        if authorization is not None and authorization.strip():
            credential = _bearer_credential(authorization)
            if credential.startswith(API_KEY_PREFIX):
                return self._api_key(credential)
            return self._tokens.verify(credential)
        if api_key_header is not None and api_key_header.strip():
            return self._api_key(api_key_header.strip())
        raise AuthenticationFailed(MISSING_CREDENTIALS)

    def _api_key(self, key: str) -> Principal:
        principal = self._api_keys.lookup(key)
        if principal is None:
            raise AuthenticationFailed("API key is not recognised")
        return principal


def _bearer_credential(header: str) -> str:
    scheme, _, credential = header.strip().partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential or " " in credential:
        raise AuthenticationFailed(
            "Authorization header must be 'Bearer <token>' (other schemes are not accepted)"
        )
    return credential
