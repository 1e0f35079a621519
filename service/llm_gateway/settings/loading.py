"""`load_settings`: Settings from the environment (or a mapping in its place), or every problem."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from llm_gateway.errors import ConfigurationError
from llm_gateway.settings.cross_field import cross_field_problems
from llm_gateway.settings.model import ServiceSettings, Settings
from llm_gateway.settings.sources import environment_replaced_by
from llm_gateway.settings.values import DEPRECATED_RETRY_ENV

log = logging.getLogger("llm_gateway.settings")


def load_settings(
    env: Mapping[str, str] | None = None, *, env_file: str | None = ".env"
) -> Settings:
    """Build Settings from the environment, or raise ConfigurationError listing every problem.

    `env`, when given, is read in place of os.environ (tests pass a dict; os.environ is not
    touched); `SECRETS_DIR` in it names the directory whose files supply secrets.
    """
    source = os.environ if env is None else env
    if any(name.upper() == DEPRECATED_RETRY_ENV for name in source):
        _warn_deprecated_retry_env()
    secrets_dir = source.get("SECRETS_DIR")
    if secrets_dir and not Path(secrets_dir).is_dir():
        raise ConfigurationError([f"SECRETS_DIR {secrets_dir} is not a directory"])
    sources: dict[str, Any] = {"_env_file": env_file, "_secrets_dir": secrets_dir or None}
    with environment_replaced_by(env):
        try:
            return Settings(**sources)
        except ValidationError as exc:
            problems = _format_validation_error(exc)
            invalid = {str(item["loc"][0]) for item in exc.errors() if item["loc"]}
            if invalid:
                problems += _rules_broken_by_the_valid_fields(invalid, sources)
    raise ConfigurationError(problems)


def _rules_broken_by_the_valid_fields(invalid: set[str], sources: dict[str, Any]) -> list[str]:
    """pydantic runs the rules between fields only on a valid model: run them here on the
    service group, the invalid fields at their defaults and the rules that read them skipped."""
    fields = ServiceSettings.model_fields
    defaults = {
        name: fields[name].get_default(call_default_factory=True)
        for name in invalid
        if name in fields
    }
    try:
        service = ServiceSettings(**sources, **defaults)
    except ValidationError:
        return []  # a default that does not validate: nothing more to say than the field errors
    return cross_field_problems(service, unknown=invalid)


def _format_validation_error(error: ValidationError) -> list[str]:
    problems: list[str] = []
    for item in error.errors():
        message = str(item.get("msg", "invalid value"))
        message = message.removeprefix("Value error, ")
        location = ".".join(str(part) for part in item.get("loc", ()))
        if location:
            # Field errors name the variable; model-level problems already name theirs.
            env_name = location.upper()
            if env_name not in message:
                message = f"{env_name}: {message}"
            # Never echo the offending input: it may be a secret.
        problems.extend(line for line in message.split("\n") if line)
    return problems


@functools.cache
def _warn_deprecated_retry_env() -> None:
    """Once per process: settings are loaded by gunicorn's master and again by each worker."""
    log.warning(
        "deprecated_setting",
        extra={"setting": DEPRECATED_RETRY_ENV, "use_instead": "RETRIES_AFTER_FIRST_TRY"},
    )
