"""check-config's view of auth: every problem in users, keys, signing key and storage at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_gateway.auth.api_keys import generate_api_key, hash_api_key
from llm_gateway.auth.config_check import check_auth_configuration
from llm_gateway.errors import ConfigurationError
from tests.support.logs import capture_json_logs
from tests.support.settings import make_settings


def test_a_valid_configuration_passes_quietly(tmp_path: Path) -> None:
    keys = tmp_path / "keys.yaml"
    keys.write_text(f"- name: jobs\n  key_hash: {hash_api_key(generate_api_key())}\n  role: user\n")
    with capture_json_logs() as logs:
        check_auth_configuration(make_settings(tmp_path, API_KEYS_FILE=keys))
    assert logs.records == []


def test_every_problem_is_reported_together(tmp_path: Path) -> None:
    keys = tmp_path / "keys.json"
    keys.write_text('[{"name": "jobs", "key_hash": "lgw_plain", "role": "user"}]')
    settings = make_settings(
        tmp_path,
        USERS_JSON='[{"username": "a", "password_hash": "plain", "role": "user"}]',
        API_KEYS_FILE=keys,
        JWT_ALGORITHM="HS512",  # the 44-character test key is too short for HS512
        RATE_LIMIT_ENABLED="true",
        RATE_LIMIT_STORAGE_URI="nosuch://host",
    )
    with pytest.raises(ConfigurationError) as caught:
        check_auth_configuration(settings)
    problems = caught.value.problems
    assert [line.split(" ")[0] for line in problems] == [
        "USERS_JSON",
        "API_KEYS_FILE",
        "JWT_SECRET_KEY",
        "RATE_LIMIT_STORAGE_URI",
    ]
