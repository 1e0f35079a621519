"""The values contract: the schema rejects what the service would choke on, with a clear message."""

from __future__ import annotations

import pytest

from tests.chart.rendering import render, render_error

pytestmark = pytest.mark.chart


@pytest.mark.parametrize(
    ("sets", "expected"),
    [
        pytest.param(
            ("replicaCount=2", "replicaCuont=3"), "replicaCuont", id="unknown-top-level-key"
        ),
        pytest.param(("drain.preStopSecs=5",), "preStopSecs", id="unknown-nested-key"),
        pytest.param(("probes.readiness.path=/health",), "path", id="probe-paths-are-not-values"),
        pytest.param(("config.logLevel=TRACE",), "logLevel", id="enum-enforced"),
        pytest.param(("replicaCount=0",), "replicaCount", id="range-enforced"),
        pytest.param(("config.webConcurrency=two",), "webConcurrency", id="type-enforced"),
        pytest.param(("drain.preStopMode=nap",), "preStopMode", id="prestop-mode-enum"),
        pytest.param(
            ("config.extraEnv.JWT_SECRET_KEY=plain-text-in-a-configmap",),
            "JWT_SECRET_KEY",
            id="secrets-never-through-extra-env",
        ),
        pytest.param(
            ("config.extraEnv.lower_case=x",), "lower_case", id="extra-env-names-are-env-names"
        ),
        pytest.param(("litellm.masterKey=no-sk-prefix",), "masterKey", id="subchart-schema-too"),
        pytest.param(("qdrant.persistance.size=1Gi",), "persistance", id="subchart-unknown-key"),
    ],
)
def test_schema_rejects_bad_values(sets: tuple[str, ...], expected: str) -> None:
    message = render_error(sets=sets)
    assert "schema" in message.lower()
    assert expected in message


def test_missing_jwt_secret_source_is_refused_with_a_clear_message() -> None:
    message = render_error(with_jwt=False)
    assert "no JWT secret source" in message
    assert "secrets.jwtSecretKey" in message
    assert "secrets.existingSecret" in message
    assert "openssl rand -hex 32" in message


def test_a_short_jwt_secret_is_refused() -> None:
    message = render_error(sets=("secrets.jwtSecretKey=too-short",), with_jwt=False)
    assert "jwtSecretKey" in message


def test_an_existing_secret_is_a_jwt_secret_source() -> None:
    manifests = render(sets=("secrets.existingSecret=operator-managed",), with_jwt=False)
    pod = manifests.gateway()["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "secrets")
    assert volume["secret"]["secretName"] == "operator-managed"


def test_disabled_litellm_without_an_external_url_is_refused() -> None:
    message = render_error(sets=("litellm.enabled=false",))
    assert "external.litellmUrl" in message


def test_extra_env_reaches_the_configmap() -> None:
    config = render(sets=("config.extraEnv.RATE_LIMIT_USER=10/second",)).gateway_config()
    assert config["RATE_LIMIT_USER"] == "10/second"
