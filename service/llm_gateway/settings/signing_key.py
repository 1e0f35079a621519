"""The one policy for the JWT signing key when none is configured.

Production never runs without a configured key (validation refuses it). Development may: a key
is generated once per process and announced once. gunicorn's master generates it before forking
and hands it to its workers through the environment, so every worker verifies the tokens its
siblings issued; tokens die with the server.
"""

from __future__ import annotations

import functools
import logging
import secrets

from llm_gateway.errors import ConfigurationError
from llm_gateway.settings.model import Settings
from llm_gateway.settings.values import MISSING_JWT_SECRET

log = logging.getLogger("llm_gateway.settings")


def signing_key(settings: Settings) -> str:
    """The JWT signing key: the configured one, or in development this process's generated one."""
    if settings.jwt_secret_key is not None:
        return settings.jwt_secret_key.get_secret_value()
    if not settings.is_development:
        raise ConfigurationError([MISSING_JWT_SECRET])
    return _development_key()


@functools.cache
def _development_key() -> str:
    log.warning(
        "development_jwt_secret_generated",
        extra={
            "detail": "ENVIRONMENT=development and no JWT_SECRET_KEY: tokens are signed with a "
            "random key shared by this process (and the workers it forks) and lost at restart"
        },
    )
    return secrets.token_urlsafe(48)
