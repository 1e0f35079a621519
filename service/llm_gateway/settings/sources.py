"""Where settings come from: the process environment, or an explicit mapping in its place.

`load_settings(env)` hands the mapping to `Settings.settings_customise_sources` through a
context variable (the hook is a classmethod and takes no arguments of ours), so os.environ is
never rewritten, and concurrent loads in one process cannot see each other's mapping.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar

from pydantic_settings import BaseSettings, EnvSettingsSource
from pydantic_settings.sources.utils import parse_env_vars

_explicit_environment: ContextVar[Mapping[str, str] | None] = ContextVar(
    "settings_environment", default=None
)


class MappingEnvSource(EnvSettingsSource):
    """pydantic-settings' environment source, reading a given mapping instead of os.environ."""

    def __init__(self, settings_cls: type[BaseSettings], environment: Mapping[str, str]) -> None:
        self._environment = environment  # read by _load_env_vars, which the base __init__ calls
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(
            self._environment, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str
        )


def explicit_environment() -> Mapping[str, str] | None:
    """The mapping `load_settings` was given for this load, or None: read os.environ."""
    return _explicit_environment.get()


@contextmanager
def environment_replaced_by(environment: Mapping[str, str] | None) -> Iterator[None]:
    token = _explicit_environment.set(environment)
    try:
        yield
    finally:
        _explicit_environment.reset(token)
