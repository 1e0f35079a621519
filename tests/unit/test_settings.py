"""Settings refuse unsafe configurations with one clear line per problem, and never leak secrets."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from llm_gateway.errors import ConfigurationError
from llm_gateway.settings import load_settings
from tests.support.processes import run_python
from tests.support.settings import TEST_JWT_SECRET, base_env


def problems(**overrides: str) -> list[str]:
    env = base_env(**overrides)
    for key, value in list(env.items()):
        if value == "<unset>":
            del env[key]
    with pytest.raises(ConfigurationError) as caught:
        load_settings(env, env_file=None)
    return caught.value.lines()


@pytest.mark.parametrize(
    "secret",
    [
        pytest.param("<unset>", id="missing"),
        pytest.param("your-secret-key-change-in-production", id="tutorial-placeholder"),
        pytest.param("changeme", id="changeme"),
        pytest.param("secret", id="secret"),
        pytest.param("", id="empty"),
    ],
)
def test_placeholder_or_missing_jwt_secret_is_refused(secret: str) -> None:
    assert problems(JWT_SECRET_KEY=secret) == [
        "configuration error: JWT_SECRET_KEY must be set and different from default"
    ]


def test_short_jwt_secret_names_the_minimum_and_not_the_value() -> None:
    (line,) = problems(JWT_SECRET_KEY="short-but-not-a-placeholder")
    assert "at least 32 characters" in line
    assert "short-but-not-a-placeholder" not in line


def test_wildcard_cors_with_credentials_is_refused() -> None:
    (line,) = problems(CORS_ORIGINS="*", CORS_ALLOW_CREDENTIALS="true")
    assert "CORS_ORIGINS='*'" in line and "CORS_ALLOW_CREDENTIALS" in line


def test_every_problem_is_reported_at_once() -> None:
    lines = problems(
        JWT_SECRET_KEY="<unset>",
        LITELLM_BASE_URL="ftp://nowhere",
        PORT="99999",
        READINESS_CHECKS="litellm,postgres",
    )
    joined = "\n".join(lines)
    assert len(lines) == 4, joined
    assert "JWT_SECRET_KEY must be set and different from default" in joined
    assert "LITELLM_BASE_URL must be an http(s) URL" in joined
    assert "PORT" in joined
    assert "READINESS_CHECKS has unknown names ['postgres']" in joined


def test_cross_field_problems_are_reported_together() -> None:
    lines = problems(
        JWT_SECRET_KEY="changeme",
        CORS_ORIGINS="*",
        CORS_ALLOW_CREDENTIALS="true",
        UVICORN_GRACEFUL_TIMEOUT="29",
    )
    assert len(lines) == 3
    assert any("GUNICORN_GRACEFUL_TIMEOUT" in line for line in lines)


def test_a_rule_reading_an_invalid_field_is_not_reported_beside_it() -> None:
    # With UVICORN_GRACEFUL_TIMEOUT unreadable, the drain budget cannot be judged (its default
    # would break the rule here): only the field itself is reported.
    (line,) = problems(UVICORN_GRACEFUL_TIMEOUT="soon", GUNICORN_GRACEFUL_TIMEOUT="20")
    assert line.startswith("configuration error: UVICORN_GRACEFUL_TIMEOUT")


def test_every_broken_rule_between_fields_is_reported_at_once() -> None:
    lines = problems(
        JWT_SECRET_KEY="<unset>",
        CORS_ORIGINS="*",
        CORS_ALLOW_CREDENTIALS="true",
        UVICORN_GRACEFUL_TIMEOUT="29",
        OTEL_EXPORTER="otlp",
    )
    assert len(lines) == 4, lines
    assert lines[0] == "configuration error: JWT_SECRET_KEY must be set and different from default"
    assert any("CORS_ALLOW_CREDENTIALS" in line for line in lines)
    assert any("GUNICORN_GRACEFUL_TIMEOUT" in line for line in lines)
    assert any("OTEL_EXPORTER=otlp needs OTEL_EXPORTER_OTLP_ENDPOINT" in line for line in lines)


def test_a_rule_between_fields_does_not_depend_on_which_field_is_declared_first() -> None:
    # The graceful timeout is declared before the two it bounds; too small a bound and too
    # large a drain are the same problem either way round.
    lowered = problems(GUNICORN_GRACEFUL_TIMEOUT="20")
    raised = problems(SHUTDOWN_FLUSH_TIMEOUT="6")
    assert ["GUNICORN_GRACEFUL_TIMEOUT" in line for line in lowered + raised] == [True, True]


def test_an_explicit_environment_is_read_instead_of_the_process_environment() -> None:
    # A fresh interpreter with PORT=1234 in its own environment: a mapping without PORT must not
    # see it, and loading from the mapping must leave os.environ as it was.
    script = (
        "import os, sys\n"
        "from llm_gateway.settings import load_settings\n"
        "from tests.support.settings import base_env\n"
        "before = dict(os.environ)\n"
        "explicit = load_settings(base_env(), env_file=None).port\n"
        "unchanged = dict(os.environ) == before\n"
        "sys.stdout.write(repr([explicit, unchanged, load_settings(env_file=None).port]))\n"
    )
    result = run_python(script, {**base_env(), "PORT": "1234", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert result.stdout == "[8000, True, 1234]"


@pytest.mark.parametrize(
    ("env", "names"),
    [
        pytest.param(
            {
                "REQUEST_DEADLINE": "30",
                "UPSTREAM_REQUEST_TIMEOUT": "30",
                "STREAM_FIRST_TOKEN_TIMEOUT": "5",
            },
            ("REQUEST_DEADLINE", "UPSTREAM_REQUEST_TIMEOUT"),
            id="deadline-equals-the-model-timeout",
        ),
        pytest.param(
            {"REQUEST_DEADLINE": "20", "STREAM_FIRST_TOKEN_TIMEOUT": "25"},
            ("STREAM_FIRST_TOKEN_TIMEOUT", "REQUEST_DEADLINE"),
            id="first-token-past-the-deadline",
        ),
    ],
)
def test_a_time_budget_that_cannot_fall_back_is_refused_in_one_line(
    env: dict[str, str], names: tuple[str, ...]
) -> None:
    (line,) = problems(**{"UPSTREAM_REQUEST_TIMEOUT": "10", **env})
    assert all(name in line for name in names), line
    assert "docs/failure-semantics.md" in line


def test_url_passwords_are_redacted_in_messages_and_summary() -> None:
    (line,) = problems(LITELLM_BASE_URL="ftp://user:hunter2hunter2@host")
    assert "hunter2hunter2" not in line
    settings = load_settings(
        base_env(MLFLOW_TRACKING_URI="http://ml:pa55word-xyz@mlflow:5000"), env_file=None
    )
    summary = settings.redacted_summary()
    assert summary["mlflow_tracking_uri"] == "http://ml:***@mlflow:5000"
    assert summary["jwt_secret_key"] == "<set>"
    assert TEST_JWT_SECRET not in repr(summary)


def test_development_mode_may_omit_the_secret_but_not_use_a_placeholder() -> None:
    env = base_env(ENVIRONMENT="development")
    del env["JWT_SECRET_KEY"]
    assert load_settings(env, env_file=None).jwt_secret_key is None
    assert problems(ENVIRONMENT="development", JWT_SECRET_KEY="changeme")


def test_secrets_are_read_from_files_in_secrets_dir(tmp_path: Path) -> None:
    (tmp_path / "jwt_secret_key").write_text("k" * 40)
    env = base_env(SECRETS_DIR=str(tmp_path))
    del env["JWT_SECRET_KEY"]
    settings = load_settings(env, env_file=None)
    assert settings.jwt_secret_key is not None
    assert settings.jwt_secret_key.get_secret_value() == "k" * 40


def test_comma_separated_lists() -> None:
    settings = load_settings(
        base_env(CORS_ORIGINS="https://a.example, https://b.example", TRUSTED_PROXIES="10.0.0.0/8"),
        env_file=None,
    )
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.trusted_proxies == ["10.0.0.0/8"]


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llm_gateway.cli", *args],
        env={**env, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    )


def test_check_config_exits_2_with_one_line_and_no_traceback() -> None:
    env = base_env(JWT_SECRET_KEY="your-secret-key-change-in-production")
    result = _cli(env, "check-config")
    assert result.returncode == 2
    assert result.stderr == (
        "configuration error: JWT_SECRET_KEY must be set and different from default\n"
    )
    assert "Traceback" not in result.stdout + result.stderr


def test_serve_refuses_bad_config_before_starting_gunicorn() -> None:
    result = _cli(base_env(JWT_SECRET_KEY="changeme", PORT="0"), "serve")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 2


def test_check_config_prints_redacted_summary_without_secrets() -> None:
    secret_key = "s3cr3t-litellm-master-key-value"
    result = _cli(base_env(LITELLM_API_KEY=secret_key), "check-config")
    assert result.returncode == 0, result.stderr
    assert '"jwt_secret_key": "<set>"' in result.stdout
    assert TEST_JWT_SECRET not in result.stdout
    assert secret_key not in result.stdout
    assert result.stdout.rstrip().endswith("configuration ok")


def test_retries_after_first_try_is_set_by_its_name() -> None:
    settings = load_settings(base_env(RETRIES_AFTER_FIRST_TRY="1"), env_file=None)
    assert settings.retries_after_first_try == 1


def test_the_deprecated_retry_max_attempts_still_works_and_warns_once_per_process() -> None:
    # A fresh interpreter: the warning is once per process, so this process may have logged it.
    script = (
        "import sys\n"
        "from llm_gateway.settings import load_settings\n"
        "from tests.support.settings import base_env\n"
        "env = base_env(RETRY_MAX_ATTEMPTS='1')\n"
        "values = [load_settings(env, env_file=None).retries_after_first_try for _ in range(2)]\n"
        "sys.stdout.write(repr(values))\n"
    )
    result = run_python(script)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "[1, 1]"
    assert result.stderr.count("deprecated_setting") == 1
