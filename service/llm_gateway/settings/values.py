"""The value types and checks the settings' field groups share (no field lives here)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic_settings import NoDecode

from llm_gateway.urls import redact_url

# Values people copy from tutorials; a token signed with one of them is forgeable by anyone.
PLACEHOLDER_SECRETS = frozenset(
    {
        "your-secret-key-change-in-production",
        "your-secret-key",
        "change-me",
        "changeme",
        "change-this",
        "changethis",
        "secret",
        "secret-key",
        "supersecret",
        "super-secret-key",
        "jwt-secret",
        "jwt_secret_key",
        "password",
        "default",
        "development",
        "test",
    }
)
MIN_SECRET_LENGTH = 32
DEPRECATED_RETRY_ENV = "RETRY_MAX_ATTEMPTS"  # now RETRIES_AFTER_FIRST_TRY
READINESS_CHECK_NAMES = ("litellm", "qdrant", "mlflow")
DEFAULT_MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}$"
MISSING_JWT_SECRET = "JWT_SECRET_KEY must be set and different from default"  # noqa: S105 - a message

# A list read from one environment variable as "a, b" (or a JSON list), not decoded as JSON.
CommaList = Annotated[list[str], NoDecode]


def split_commas(value: Any) -> Any:
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith("["):
            return json.loads(stripped)
        return [item.strip() for item in stripped.split(",") if item.strip()]
    return value


def check_http_url(value: str | None, name: str) -> str | None:
    if value is None or value == "":
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{name} must be an http(s) URL with a host, got {redact_url(value)!r}")
    try:
        parts.port  # noqa: B018 - parsing the port is the validation
    except ValueError as exc:
        raise ValueError(f"{name} has an invalid port: {exc}") from None
    return value.rstrip("/")


def secret_problem(secret: str) -> str | None:
    """Why a configured signing key is unsafe, or None (whether one is required is not asked)."""
    if not secret or secret.strip().lower() in PLACEHOLDER_SECRETS:
        return MISSING_JWT_SECRET
    if len(secret) < MIN_SECRET_LENGTH:
        return (
            f"JWT_SECRET_KEY must be at least {MIN_SECRET_LENGTH} characters "
            f"(got {len(secret)}); generate one with: openssl rand -hex 32"
        )
    return None


def existing_file(value: Path | None, field_name: str) -> Path | None:
    if value is not None and not value.is_file():
        raise ValueError(f"{field_name.upper()} {value} does not exist")
    return value
