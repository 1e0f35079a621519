"""LiteLLM proxy configs that point model names at a fake upstream (tests and the benchmark).

The shipped config (chart/llm-gateway/charts/litellm/files/config.yaml) serves `mock_response`
models; these configs instead route `openai/<name>` to the controllable fake upstream, so tests
can inject upstream failures and count the attempts that reached it.

LiteLLM's own resilience is off by default (`num_retries: 0`, cooldowns disabled): the gateway's
retry policy and circuit breaker are what the tests measure, and a cooled-down deployment would
turn an injected failure into an unrelated "no deployments available" answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

# Model names the test config always has: one plain model and a primary -> secondary group.
DEFAULT_MODELS = ("fake-model", "primary-model", "secondary-model")
DEFAULT_FALLBACKS: Mapping[str, Sequence[str]] = {"primary-model": ["secondary-model"]}
EMBEDDING_MODEL = "fake-embedding"


def upstream_deployment(
    name: str, upstream_url: str, *, timeout: float | None, stream_timeout: float | None
) -> dict[str, Any]:
    params: dict[str, Any] = {
        "model": f"openai/{name}",
        "api_base": f"{upstream_url.rstrip('/')}/v1",
        "api_key": "fake",
    }
    if timeout is not None:
        params["timeout"] = timeout
    if stream_timeout is not None:
        params["stream_timeout"] = stream_timeout
    return {"model_name": name, "litellm_params": params}


def fake_upstream_config(
    upstream_url: str,
    *,
    models: Sequence[str] = DEFAULT_MODELS,
    fallbacks: Mapping[str, Sequence[str]] = DEFAULT_FALLBACKS,
    num_retries: int = 0,
    timeout: float | None = 30.0,
    stream_timeout: float | None = None,
    master_key: str | None = None,
    embedding_model: str | None = EMBEDDING_MODEL,
) -> dict[str, Any]:
    """A proxy config serving `models` (and an embedding model) from the fake at `upstream_url`.

    `fallbacks` maps a model group to the groups LiteLLM tries, in order, when it fails.
    """
    model_list = [
        upstream_deployment(name, upstream_url, timeout=timeout, stream_timeout=stream_timeout)
        for name in models
    ]
    if embedding_model is not None:
        embedding = upstream_deployment(
            embedding_model, upstream_url, timeout=timeout, stream_timeout=None
        )
        embedding["model_info"] = {"mode": "embedding"}
        model_list.append(embedding)
    litellm_settings: dict[str, Any] = {
        "num_retries": num_retries,
        "drop_params": True,
        "telemetry": False,
    }
    if timeout is not None:
        litellm_settings["request_timeout"] = timeout
    config: dict[str, Any] = {
        "model_list": model_list,
        "litellm_settings": litellm_settings,
        "router_settings": {
            "num_retries": num_retries,
            "disable_cooldowns": True,
            "fallbacks": [{group: list(targets)} for group, targets in fallbacks.items()],
            # A content-filter refusal is the answer: never laundered through a fallback (by
            # default LiteLLM falls back past it; an empty wildcard entry stops that).
            "content_policy_fallbacks": [{"*": []}],
        },
        "general_settings": {},
    }
    if master_key is not None:
        config["general_settings"]["master_key"] = master_key
    return config


def write_config(config: Mapping[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(dict(config), sort_keys=False))
    return path
