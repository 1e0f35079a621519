"""Configuration checks that need more than Settings: the files settings point at.

Settings validate values; users, API keys, the signing key's fit for its algorithm, the rate-limit
storage URI and the injection patterns file are only known once read. `check-config`, `serve` and
gunicorn's master run this before any worker forks, so a bad file is one line per problem and
exit status 2, not a crash loop of worker tracebacks.
"""

from __future__ import annotations

from llm_gateway.auth.config_check import check_auth_configuration
from llm_gateway.errors import ConfigurationError
from llm_gateway.guard.injection import InjectionDetector
from llm_gateway.settings import Settings


def check_runtime_configuration(settings: Settings) -> None:
    problems: list[str] = []
    try:
        check_auth_configuration(settings)
    except ConfigurationError as exc:
        problems.extend(exc.problems)
    if settings.guard_enabled:
        try:
            InjectionDetector.with_patterns_file(settings.injection_patterns_file)
        except ConfigurationError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigurationError(problems)
