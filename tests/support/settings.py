"""Settings for tests: valid production-shaped values, overridable per test."""

from __future__ import annotations

from typing import Any

from llm_gateway.settings import Settings, load_settings

TEST_JWT_SECRET = "test-signing-key-0123456789abcdef-0123456789"


def base_env(**overrides: Any) -> dict[str, str]:
    env = {
        "ENVIRONMENT": "production",
        "JWT_SECRET_KEY": TEST_JWT_SECRET,
        "LITELLM_BASE_URL": "http://127.0.0.1:9",
        "TRACKING_ENABLED": "false",
        "CACHE_ENABLED": "false",
        "RATE_LIMIT_ENABLED": "false",
        "LOG_LEVEL": "INFO",
    }
    env.update({key.upper(): str(value) for key, value in overrides.items()})
    return env


def make_settings(tmp_path: Any = None, **overrides: Any) -> Settings:
    env = base_env(**overrides)
    if tmp_path is not None and "DATA_DIR" not in env:
        env["DATA_DIR"] = str(tmp_path)
    return load_settings(env, env_file=None)
