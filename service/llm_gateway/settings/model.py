"""`Settings`: the field groups, where their values come from, and the rules between them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from llm_gateway.settings.cross_field import cross_field_problems, time_budget_problems
from llm_gateway.settings.dependency_fields import DependencyFields
from llm_gateway.settings.service_fields import ServiceFields
from llm_gateway.settings.sources import MappingEnvSource, explicit_environment
from llm_gateway.urls import redact_url


class SourcedSettings(BaseSettings):
    """Where every settings class here reads from; no fields of its own."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        case_sensitive=False,
        extra="ignore",
        validate_default=True,
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """pydantic-settings' order (init kwargs, environment, .env, secrets directory); the
        environment is the mapping `load_settings` was given, when it was given one."""
        environment = explicit_environment()
        if environment is not None:
            env_settings = MappingEnvSource(settings_cls, environment)
        return init_settings, env_settings, dotenv_settings, file_secret_settings


class ServiceSettings(ServiceFields, SourcedSettings):
    """The service group alone: what the rules between fields read (see loading.py)."""


# The bases' order keeps the fields' order: the service's own groups first, then its
# dependencies' (check-config prints them in this order).
class Settings(DependencyFields, ServiceFields, SourcedSettings):
    # pydantic runs an after-validator only once every field is valid on its own; when some are
    # not, load_settings runs the rules that do not read them.
    @model_validator(mode="after")
    def _rules_between_fields(self) -> Settings:
        problems = cross_field_problems(self) + time_budget_problems(self)
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @property
    def is_development(self) -> bool:
        return self.environment == "development"

    def redacted_summary(self) -> dict[str, Any]:
        """Every setting, with secrets reduced to whether they are set; safe to print and log."""
        summary: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                summary[name] = "<set>" if value.get_secret_value() else "<empty>"
            elif value is None:
                summary[name] = None
            elif isinstance(value, str) and "://" in value:
                summary[name] = redact_url(value)
            elif isinstance(value, Path):
                summary[name] = str(value)
            elif name == "users_json":
                summary[name] = "<set>"
            else:
                summary[name] = value
        return summary
