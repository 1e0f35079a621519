"""Validate everything auth and rate limits read from configuration, without serving.

Settings validate their own fields; the contents of USERS_FILE / USERS_JSON / API_KEYS_FILE,
the signing key's length for the chosen algorithm and the rate-limit storage URI are only
known once those objects are built. `check_auth_configuration` builds them side-effect free so
`llm-gateway check-config` and `serve` (before exec'ing gunicorn) can fail with one line per
problem instead of a worker traceback.
"""

from __future__ import annotations

from collections.abc import Callable

from llm_gateway.auth.api_keys import ApiKeyStore
from llm_gateway.auth.tokens import TokenService
from llm_gateway.auth.users import load_user_records
from llm_gateway.errors import ConfigurationError
from llm_gateway.ratelimit.limiter import RateLimiter
from llm_gateway.settings import Settings


def check_auth_configuration(settings: Settings) -> None:
    """Raise ConfigurationError listing every auth/rate-limit problem at once; else None."""
    problems: list[str] = []

    def attempt(build: Callable[[], object]) -> None:
        try:
            build()
        except ConfigurationError as exc:
            problems.extend(exc.problems)

    attempt(lambda: load_user_records(settings))
    attempt(lambda: ApiKeyStore.from_file(settings.api_keys_file))
    secret = settings.jwt_secret_key
    if secret is not None:  # None only in development, where a generated key is used
        attempt(
            lambda: TokenService(
                secret.get_secret_value(),
                settings.jwt_algorithm,
                settings.jwt_issuer,
                settings.jwt_audience,
                settings.jwt_expires_seconds,
            )
        )
    attempt(lambda: RateLimiter.from_settings(settings, None))
    if problems:
        raise ConfigurationError(problems)
