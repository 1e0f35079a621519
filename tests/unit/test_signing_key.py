"""The one policy for the JWT signing key: configured, or in development generated once."""

from __future__ import annotations

import pytest

from llm_gateway.errors import ConfigurationError
from llm_gateway.settings import signing_key
from tests.support.processes import run_python
from tests.support.settings import TEST_JWT_SECRET, make_settings


def test_the_configured_key_is_the_key() -> None:
    assert signing_key(make_settings()) == TEST_JWT_SECRET


def test_production_without_a_key_is_refused() -> None:
    # Validation refuses it first; a copy made past validation is refused here too.
    settings = make_settings().model_copy(update={"jwt_secret_key": None})
    with pytest.raises(ConfigurationError) as caught:
        signing_key(settings)
    assert caught.value.lines() == [
        "configuration error: JWT_SECRET_KEY must be set and different from default"
    ]


def test_development_generates_one_key_per_process_and_announces_it_once() -> None:
    script = (
        "import sys\n"
        "from llm_gateway.app import create_app\n"
        "from llm_gateway.settings import load_settings, signing_key\n"
        "from tests.support.settings import base_env\n"
        "env = base_env(ENVIRONMENT='development')\n"
        "del env['JWT_SECRET_KEY']\n"
        "keys = {signing_key(load_settings(env, env_file=None)) for _ in range(3)}\n"
        "create_app(load_settings(env, env_file=None))\n"
        "sys.stdout.write(repr([len(keys), len(keys.pop()) >= 32]))\n"
    )
    result = run_python(script)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "[1, True]"
    assert result.stderr.count("development_jwt_secret_generated") == 1
