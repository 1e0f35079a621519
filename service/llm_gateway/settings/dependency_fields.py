"""The settings of what the service talks to: upstream, guard, rate limits, cache, tracking.

A field group of `Settings` (settings/model.py).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, BaseModel, Field, SecretStr, ValidationInfo, field_validator

from llm_gateway.settings.values import (
    DEFAULT_MODEL_NAME_PATTERN,
    DEPRECATED_RETRY_ENV,
    check_http_url,
    existing_file,
)


class DependencyFields(BaseModel):
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
    upstream_read_cascades: bool = Field(
        True,
        description="Read each model's fallbacks from LiteLLM (GET /v1/models?include_metadata="
        "true) so one attempt leaves room for LiteLLM's whole fallback chain; false: every model "
        "is treated as having none.",
    )

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
        "tier, the semantic index and the worker's Qdrant Edge shard (bounds worker memory). "
        "On the embedded store it also bounds the exact answers the pod's workers share on "
        "disk (DATA_DIR/cache/exact.sqlite3).",
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
        None, description="Qdrant server URL; unset: embedded Qdrant Edge under DATA_DIR."
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
        5,
        ge=1,
        description="Journal bound per worker: MAX_BYTES x MAX_FILES bytes; the oldest dropped "
        "beyond, counted.",
    )
    trace_replay_interval: float = Field(
        15, gt=0, description="Seconds between attempts to replay the journal."
    )
    trace_export_batch_size: int = Field(
        100, ge=1, le=1000, description="Traces per MLflow upload (one OTLP request)."
    )
    trace_export_concurrency: int = Field(
        4, ge=1, le=32, description="MLflow uploads in flight per worker (live and replay)."
    )
    trace_export_timeout: float = Field(
        10, gt=0, description="Seconds one MLflow upload may take before it counts as failed."
    )
    trace_backlog_warn_bytes: int = Field(
        50_000_000,
        ge=1,
        description="Journal backlog (bytes, all workers) that logs trace_backlog_high once.",
    )

    @field_validator("litellm_base_url")
    @classmethod
    def _litellm_url(cls, value: str) -> str:
        checked = check_http_url(value, "LITELLM_BASE_URL")
        if checked is None:
            raise ValueError("LITELLM_BASE_URL must be set")
        return checked

    @field_validator("qdrant_url", "mlflow_tracking_uri")
    @classmethod
    def _optional_urls(cls, value: str | None, info: ValidationInfo) -> str | None:
        return check_http_url(value, str(info.field_name).upper())

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

    @field_validator("injection_patterns_file")
    @classmethod
    def _existing_patterns_file(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return existing_file(value, str(info.field_name))
