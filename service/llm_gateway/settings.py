"""The service's one configuration door.

`Settings` is built once at the entry point (`load_settings`) and passed down. Every field reads
from an environment variable of the same name (upper case), from `.env`, or, for secrets, from a
file of that name in `SECRETS_DIR` (how Kubernetes mounts Secrets). Unsafe values stop the boot:
`load_settings` raises `ConfigurationError` whose lines name every problem at once.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from llm_gateway.errors import ConfigurationError
from llm_gateway.urls import redact_url

log = logging.getLogger(__name__)

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

CommaList = Annotated[list[str], NoDecode]


def _split_commas(value: Any) -> Any:
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith("["):
            import json

            return json.loads(stripped)
        return [item.strip() for item in stripped.split(",") if item.strip()]
    return value


def _check_http_url(value: str | None, name: str) -> str | None:
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


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        case_sensitive=False,
        extra="ignore",
        validate_default=True,
    )

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
        description="Writable directory for local state (Qdrant local mode, the exact cache the "
        "workers share, trace journal, metrics). A volume in a container.",
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

    # --- upstream (LiteLLM proxy) ------------------------------------------------------------
    litellm_base_url: str = Field(
        "http://127.0.0.1:4000", description="Base URL of the LiteLLM proxy."
    )
    litellm_api_key: SecretStr | None = Field(
        None, description="LiteLLM master or virtual key sent as the bearer to the proxy."
    )
    default_model: str = Field("smart-router", description="Model used when a request names none.")
    upstream_transport: Literal["aiohttp", "httpx"] = Field(
        "aiohttp", description="HTTP transport of the upstream client (aiohttp is faster here)."
    )
    upstream_connect_timeout: float = Field(5, gt=0, description="Connect timeout, seconds.")
    upstream_request_timeout: float = Field(
        30, gt=0, description="Timeout of one upstream attempt, seconds."
    )
    request_deadline: float = Field(
        45, gt=0, description="Overall deadline of one request, retries included, seconds."
    )
    upstream_max_connections: int = Field(200, ge=1, description="Upstream connection pool size.")
    retries_after_first_try: int = Field(
        3,
        ge=0,
        le=10,
        # RETRY_MAX_ATTEMPTS is the deprecated name: it counted retries, not attempts.
        validation_alias=AliasChoices("retries_after_first_try", DEPRECATED_RETRY_ENV.lower()),
        description="Retries after the first try (0: one try only).",
    )
    retry_backoff_base: float = Field(1, ge=0, description="First backoff delay; then x2 each.")
    retry_backoff_max: float = Field(8, ge=0, description="Cap on one backoff delay.")
    retry_jitter: float = Field(0.5, ge=0, description="Random extra delay up to this, seconds.")
    retry_after_cap: float = Field(
        10, ge=0, description="Longest upstream Retry-After honoured before giving up."
    )
    breaker_failure_threshold: int = Field(
        5, ge=1, description="Consecutive failures that open a model's circuit."
    )
    breaker_recovery_seconds: float = Field(
        30, gt=0, description="Open time before one half-open probe is let through."
    )
    stream_first_token_timeout: float = Field(
        30, gt=0, description="Deadline for the first streamed chunk, seconds."
    )
    stream_idle_timeout: float = Field(
        15, gt=0, description="Longest silence between streamed chunks, seconds."
    )
    models_cache_ttl: float = Field(30, ge=0, description="Seconds the model list is reused.")

    # --- guard -------------------------------------------------------------------------------
    guard_enabled: bool = Field(True, description="Run prompt-injection heuristics.")
    prompt_max_chars: int = Field(32_000, ge=1, description="Longest accepted prompt.")
    max_tokens_limit: int = Field(8192, ge=1, description="Largest accepted max_tokens.")
    model_name_pattern: str = Field(
        DEFAULT_MODEL_NAME_PATTERN, description="Regex a model name must match."
    )
    injection_patterns_file: Path | None = Field(
        None, description="Extra injection regexes, one per line, added to the built-in ones."
    )

    # --- rate limits -------------------------------------------------------------------------
    rate_limit_enabled: bool = Field(True, description="Enforce the limits below.")
    rate_limit_user: str = Field("60/minute", description="Per authenticated caller.")
    rate_limit_ip: str = Field("60/minute", description="Per client address.")
    rate_limit_login: str = Field(
        "5/minute", description="Login attempts per client address and per username."
    )
    rate_limit_storage_uri: str = Field(
        "sqlite://",
        description="Where windows are counted. sqlite:// (default): one file shared by every "
        "worker of this server (exact per pod, no server to run); sqlite:///path: the same in a "
        "file you name; redis://[user:password@]host:port/db: shared by every pod; memory://: "
        "per worker process (workers x pods multiply the effective limit).",
    )
    rate_limit_storage_password: SecretStr | None = Field(
        None,
        description="Password for a redis:// store whose URL carries none (kept out of the URL "
        "so the URL can sit in a ConfigMap).",
    )
    rate_limit_storage_failure: Literal["open", "closed"] = Field(
        "open",
        description="When the store fails or is slow: `open` serves requests unlimited "
        "(rate_limit_storage_up=0, one WARNING per change), `closed` refuses them with 503.",
    )
    rate_limit_storage_timeout: float = Field(
        0.25, gt=0, description="Longest one rate-limit check may wait for its store, seconds."
    )
    rate_limit_storage_retry_seconds: float = Field(
        1.0,
        gt=0,
        description="While the store is failing, one request per this many seconds tries it; "
        "the others get the failure behaviour at once.",
    )

    # --- cache -------------------------------------------------------------------------------
    cache_enabled: bool = Field(True, description="Answer repeated prompts from the cache.")
    cache_ttl_seconds: int = Field(3600, ge=1, description="Age after which a cached answer dies.")
    cache_scope: Literal["shared", "user"] = Field(
        "user", description="`user`: callers never see each other's cached answers."
    )
    cache_timeout: float = Field(
        0.25, gt=0, description="Cache lookups slower than this fail open (go upstream)."
    )
    cache_max_entries: int = Field(
        4000,
        ge=1,
        description="Answers each worker keeps; past it the least recently used leaves the exact "
        "tier, the semantic index and the local Qdrant folder (bounds worker memory: ~12-14 KB "
        "per answer in local mode, so ~50 MB at the default). In local mode it also bounds the "
        "exact answers the pod's workers share on disk (DATA_DIR/cache/exact.sqlite3).",
    )
    semantic_cache_enabled: bool = Field(True, description="Also match paraphrased prompts.")
    semantic_cache_threshold: float = Field(
        0.90,
        gt=0,
        le=1,
        description="Cosine similarity at or above which a prompt matches (0.90: no false hit "
        "on the shipped labelled pairs with the hashing embedder; see bench/RESULTS.md).",
    )
    qdrant_url: str | None = Field(
        None, description="Qdrant server URL; unset: embedded local mode under DATA_DIR."
    )
    qdrant_api_key: SecretStr | None = Field(None, description="Qdrant API key.")
    qdrant_collection: str = Field("llm_gateway_cache", description="Qdrant collection name.")
    embedder: Literal["hashing", "litellm"] = Field(
        "hashing",
        description="`hashing`: offline lexical feature hashing, no model download; "
        "`litellm`: the proxy's /v1/embeddings with EMBEDDING_MODEL.",
    )
    embedding_model: str = Field(
        "text-embedding-3-small", description="Embedding model when EMBEDDER=litellm."
    )

    # --- tracking (MLflow) -------------------------------------------------------------------
    tracking_enabled: bool = Field(True, description="Record every LLM call as an MLflow trace.")
    mlflow_tracking_uri: str | None = Field(
        None, description="MLflow server URL; unset: traces stay in the local journal."
    )
    mlflow_experiment_name: str = Field("llm-gateway", description="Experiment of the traces.")
    trace_queue_size: int = Field(10_000, ge=1, description="Traces buffered in memory.")
    trace_journal_max_bytes: int = Field(
        50_000_000, ge=1024, description="Journal file size before rotation."
    )
    trace_journal_max_files: int = Field(
        5, ge=1, description="Rotated journal files kept; drops beyond are counted and logged."
    )
    trace_replay_interval: float = Field(
        15, gt=0, description="Seconds between attempts to replay the journal."
    )

    # --- validation --------------------------------------------------------------------------
    @field_validator("cors_origins", "trusted_proxies", "readiness_checks", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        return _split_commas(value)

    @field_validator("litellm_base_url")
    @classmethod
    def _litellm_url(cls, value: str) -> str:
        checked = _check_http_url(value, "LITELLM_BASE_URL")
        if checked is None:
            raise ValueError("LITELLM_BASE_URL must be set")
        return checked

    @field_validator("qdrant_url", "mlflow_tracking_uri", "otel_exporter_otlp_endpoint")
    @classmethod
    def _optional_urls(cls, value: str | None, info: ValidationInfo) -> str | None:
        return _check_http_url(value, str(info.field_name).upper())

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin == "*":
                continue
            _check_http_url(origin, f"CORS_ORIGINS entry {origin!r}")
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

    @field_validator("model_name_pattern")
    @classmethod
    def _pattern(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"MODEL_NAME_PATTERN is not a valid regex: {exc}") from None
        return value

    @field_validator("rate_limit_user", "rate_limit_ip", "rate_limit_login")
    @classmethod
    def _rate(cls, value: str, info: ValidationInfo) -> str:
        from limits import parse_many

        try:
            parse_many(value)
        except ValueError:
            raise ValueError(
                f"{str(info.field_name).upper()} must look like '60/minute' or '10/second; "
                f"500/hour', got {value!r}"
            ) from None
        return value

    # Rules that involve two fields live on the later field's validator (earlier fields are in
    # `info.data` if they were valid), so one bad field does not hide the others' problems.
    @field_validator("jwt_secret_key")
    @classmethod
    def _jwt_secret(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        secret = value.get_secret_value() if value is not None else ""
        development = info.data.get("environment") == "development"
        if development and value is None:
            return None
        if not secret or secret.strip().lower() in PLACEHOLDER_SECRETS:
            raise ValueError("JWT_SECRET_KEY must be set and different from default")
        if len(secret) < MIN_SECRET_LENGTH:
            raise ValueError(
                f"JWT_SECRET_KEY must be at least {MIN_SECRET_LENGTH} characters "
                f"(got {len(secret)}); generate one with: openssl rand -hex 32"
            )
        return value

    @field_validator("cors_allow_credentials")
    @classmethod
    def _cors_credentials(cls, value: bool, info: ValidationInfo) -> bool:
        if value and "*" in info.data.get("cors_origins", []):
            raise ValueError(
                "CORS_ORIGINS='*' is refused while CORS_ALLOW_CREDENTIALS=true; "
                "list the allowed origins explicitly"
            )
        return value

    @field_validator("shutdown_flush_timeout")
    @classmethod
    def _drain_budget(cls, value: float, info: ValidationInfo) -> float:
        graceful = info.data.get("gunicorn_graceful_timeout")
        uvicorn_drain = info.data.get("uvicorn_graceful_timeout")
        if graceful is not None and uvicorn_drain is not None and uvicorn_drain + value >= graceful:
            raise ValueError(
                f"UVICORN_GRACEFUL_TIMEOUT + SHUTDOWN_FLUSH_TIMEOUT ({uvicorn_drain + value:g}s) "
                f"must be below GUNICORN_GRACEFUL_TIMEOUT ({graceful:g}s), or gunicorn kills "
                "workers before they finish draining"
            )
        return value

    @field_validator("otel_exporter_otlp_endpoint")
    @classmethod
    def _otlp_needs_endpoint(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("otel_exporter") == "otlp" and not value:
            raise ValueError("OTEL_EXPORTER=otlp needs OTEL_EXPORTER_OTLP_ENDPOINT")
        return value

    @field_validator("users_file", "api_keys_file", "injection_patterns_file")
    @classmethod
    def _existing_file(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"{str(info.field_name).upper()} {value} does not exist")
        return value

    # --- derived -----------------------------------------------------------------------------
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


def load_settings(
    env: Mapping[str, str] | None = None, *, env_file: str | None = ".env"
) -> Settings:
    """Build Settings from the environment, or raise ConfigurationError listing every problem.

    `env`, when given, replaces os.environ (tests pass a dict); `SECRETS_DIR` in it names the
    directory whose files supply secrets.
    """
    source = dict(os.environ if env is None else env)
    if any(name.upper() == DEPRECATED_RETRY_ENV for name in source):
        _warn_deprecated_retry_env()
    secrets_dir = source.get("SECRETS_DIR")
    if secrets_dir and not Path(secrets_dir).is_dir():
        raise ConfigurationError([f"SECRETS_DIR {secrets_dir} is not a directory"])
    saved = dict(os.environ)
    try:
        if env is not None:
            os.environ.clear()
            os.environ.update(source)
        return Settings(
            _env_file=env_file,
            _secrets_dir=secrets_dir or None,
        )
    except ValidationError as exc:
        raise ConfigurationError(_format_validation_error(exc)) from None
    finally:
        if env is not None:
            os.environ.clear()
            os.environ.update(saved)


@functools.cache
def _warn_deprecated_retry_env() -> None:
    """Once per process: settings are loaded by gunicorn's master and again by each worker."""
    log.warning(
        "deprecated_setting",
        extra={"setting": DEPRECATED_RETRY_ENV, "use_instead": "RETRIES_AFTER_FIRST_TRY"},
    )


def development_secret() -> str:
    """A fresh signing key for development mode only; tokens die with the process group."""
    return secrets.token_urlsafe(48)


__all__ = [
    "READINESS_CHECK_NAMES",
    "Settings",
    "development_secret",
    "load_settings",
]
