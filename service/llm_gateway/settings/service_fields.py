"""The service's own settings: runtime, drain, HTTP edge, observability, health and auth.

A field group of `Settings` (settings/model.py); the rules between fields are in cross_field.py.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationInfo, field_validator

from llm_gateway.settings.values import (
    READINESS_CHECK_NAMES,
    CommaList,
    check_http_url,
    existing_file,
    secret_problem,
    split_commas,
)


class ServiceFields(BaseModel):
    # --- runtime -------------------------------------------------------------------------------
    environment: Literal["production", "development"] = Field(
        "production",
        description="`development` allows a generated JWT secret and built-in dev users "
        "(announced in the log); `production` never invents either.",
    )
    service_name: str = Field("llm-gateway", description="Name in logs, traces and metrics.")
    host: str = Field("0.0.0.0", description="Interface gunicorn binds.")  # noqa: S104
    port: int = Field(8000, ge=1, le=65535, description="Port gunicorn binds.")
    web_concurrency: int = Field(
        2, ge=1, le=64, description="gunicorn worker processes; never derived from the CPU count."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Minimum level of JSON log lines."
    )
    data_dir: Path = Field(
        Path("data"),
        description="Writable directory for local state (Qdrant Edge cache shards, the exact "
        "cache the workers share, trace journal, metrics). A volume in a container.",
    )

    # --- drain and process bounds (the chart's `drain` values block feeds these) --------------
    gunicorn_graceful_timeout: float = Field(
        30, gt=0, description="Seconds gunicorn waits for workers after SIGTERM before SIGKILL."
    )
    gunicorn_timeout: float = Field(
        60, gt=0, description="Seconds of worker silence before gunicorn restarts it."
    )
    keepalive_seconds: float = Field(5, ge=0, description="HTTP keep-alive idle timeout.")
    uvicorn_graceful_timeout: float = Field(
        25,
        gt=0,
        description="Upper bound of a worker's drain: in-flight requests and streams get this "
        "long to finish after SIGTERM. Must leave room for the flush below gunicorn's timeout.",
    )
    shutdown_flush_timeout: float = Field(
        3, gt=0, description="Bound on flushing traces and telemetry at shutdown."
    )
    max_body_bytes: int = Field(
        1_048_576, ge=1024, description="Request bodies above this get 413 before being read."
    )

    # --- HTTP edge ---------------------------------------------------------------------------
    cors_origins: CommaList = Field(
        default_factory=list,
        description="Comma-separated origins allowed by CORS; empty disables CORS.",
    )
    cors_allow_credentials: bool = Field(False, description="Allow credentials on CORS requests.")
    trusted_proxies: CommaList = Field(
        default_factory=list,
        description="IPs/CIDRs whose X-Forwarded-For is believed when finding the client address "
        "(e.g. your ingress controller's pod CIDR). Empty: the socket peer is the client.",
    )

    # --- observability -----------------------------------------------------------------------
    tracing_enabled: bool = Field(
        True, description="Create OpenTelemetry spans (ids in logs even with no exporter)."
    )
    otel_exporter: Literal["none", "console", "otlp"] = Field(
        "none", description="Where spans go; `otlp` needs OTEL_EXPORTER_OTLP_ENDPOINT."
    )
    otel_exporter_otlp_endpoint: str | None = Field(
        None, description="OTLP/HTTP endpoint, e.g. http://otel-collector:4318."
    )
    tracing_sample_ratio: float = Field(
        1.0,
        ge=0,
        le=1,
        description="Share of new traces recorded and exported when an exporter is set; a "
        "caller's sampled traceparent is always followed. Lower it to bound tracing cost.",
    )
    access_log_enabled: bool = Field(True, description="One JSON access-log line per request.")
    metrics_enabled: bool = Field(True, description="Serve Prometheus metrics on /metrics.")

    # --- health ------------------------------------------------------------------------------
    readiness_checks: CommaList = Field(
        default_factory=list,
        description="Dependencies (litellm, qdrant, mlflow) whose outage makes /readyz fail. "
        "Empty by default: a shared dependency must not take every pod out at once.",
    )
    health_cache_ttl: float = Field(
        30, ge=0, description="Seconds /health/detailed reuses its dependency checks."
    )
    health_check_timeout: float = Field(2, gt=0, description="Per-dependency check timeout.")

    # --- auth --------------------------------------------------------------------------------
    jwt_secret_key: SecretStr | None = Field(
        None, description="HS256 signing key, >= 32 chars. Required in production."
    )
    jwt_algorithm: Literal["HS256", "HS384", "HS512"] = Field(
        "HS256", description="The one algorithm tokens are signed and verified with."
    )
    jwt_issuer: str = Field("llm-gateway", description="`iss` claim issued and required.")
    jwt_audience: str = Field("llm-gateway", description="`aud` claim issued and required.")
    jwt_expires_seconds: int = Field(3600, ge=60, le=86400, description="Token lifetime.")
    users_file: Path | None = Field(
        None,
        description="JSON or YAML file of users: [{username, password_hash, role}] "
        "(hashes from `llm-gateway hash-password`).",
    )
    users_json: str | None = Field(None, description="The same list inline, as JSON.")
    api_keys_file: Path | None = Field(
        None,
        description="JSON or YAML file of service API keys: [{name, key_hash, role}] "
        "(hashes from `llm-gateway hash-api-key`).",
    )
    dev_password: SecretStr = Field(
        SecretStr("dev-password"),
        description="Password of the built-in `admin` and `user` accounts; development only.",
    )

    @field_validator("cors_origins", "trusted_proxies", "readiness_checks", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        return split_commas(value)

    @field_validator("otel_exporter_otlp_endpoint")
    @classmethod
    def _otlp_url(cls, value: str | None) -> str | None:
        return check_http_url(value, "OTEL_EXPORTER_OTLP_ENDPOINT")

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin == "*":
                continue
            check_http_url(origin, f"CORS_ORIGINS entry {origin!r}")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"TRUSTED_PROXIES entry {entry!r} is not an IP or CIDR") from None
        return value

    @field_validator("readiness_checks")
    @classmethod
    def _readiness(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in READINESS_CHECK_NAMES]
        if unknown:
            raise ValueError(
                f"READINESS_CHECKS has unknown names {unknown}; "
                f"choose from {', '.join(READINESS_CHECK_NAMES)}"
            )
        return value

    # Whether a key is required depends on ENVIRONMENT (cross_field.py); a configured one must
    # be safe in every environment.
    @field_validator("jwt_secret_key")
    @classmethod
    def _jwt_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and (problem := secret_problem(value.get_secret_value())):
            raise ValueError(problem)
        return value

    @field_validator("users_file", "api_keys_file")
    @classmethod
    def _existing_auth_files(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return existing_file(value, str(info.field_name))
