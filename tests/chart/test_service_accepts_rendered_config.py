"""The environment and files the chart gives the pod are a configuration the service accepts.

The rendered ConfigMap becomes the environment, the rendered Secret becomes files in SECRETS_DIR
and the users file, exactly as the kubelet would mount them; then the service's own
`load_settings` (the check `llm-gateway serve` runs first) must accept them.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from llm_gateway.auth.passwords import verify_password
from llm_gateway.errors import ConfigurationError
from llm_gateway.settings import load_settings
from tests.chart.rendering import (
    KIND_VALUES,
    NODE_VALUES,
    PRODUCTION_VALUES,
    RELEASE,
    Manifests,
    render,
)

pytestmark = pytest.mark.chart


def _pod_environment(manifests: Manifests, root: Path) -> dict[str, str]:
    """The gateway container's env with mounted paths moved under `root`."""
    env = manifests.gateway_config()
    pod = manifests.gateway()["spec"]["template"]["spec"]
    container = manifests.gateway_container()
    secrets = {s["metadata"]["name"]: s.get("data", {}) for s in manifests.of_kind("Secret")}
    volumes = {v["name"]: v for v in pod["volumes"]}
    moved: dict[str, str] = {}
    for mount in container["volumeMounts"]:
        target = root / mount["mountPath"].lstrip("/")
        target.mkdir(parents=True, exist_ok=True)
        moved[mount["mountPath"]] = str(target)
        secret = volumes[mount["name"]].get("secret")
        if secret is None:
            continue
        data = secrets.get(secret["secretName"], {})
        for item in secret["items"]:
            if item["key"] in data:  # an operator's existingSecret is not rendered
                (target / item["path"]).write_bytes(base64.b64decode(data[item["key"]]))
    for name, value in list(env.items()):
        for mount_path, local in moved.items():
            if value == mount_path or value.startswith(mount_path + "/"):
                env[name] = local + value[len(mount_path) :]
    for item in container.get("env", []):
        env[item["name"]] = "value-from-another-secret"
    return env


def test_kind_configuration_boots_the_service(tmp_path: Path) -> None:
    env = _pod_environment(render(KIND_VALUES), tmp_path)
    settings = load_settings(env, env_file=None)
    assert settings.litellm_base_url == f"http://{RELEASE}-litellm:4000"
    assert settings.gunicorn_graceful_timeout == 30
    assert settings.jwt_secret_key is not None
    assert settings.users_file is not None
    # The users file the Secret renders is one the service reads: its hashes verify.
    text = settings.users_file.read_text()
    assert "password_hash" in text
    first_hash = text.split("password_hash: ", 1)[1].split("\n", 1)[0]
    assert verify_password(first_hash, "dev-password")


def test_node_configuration_boots_the_service_with_its_embedded_cache(tmp_path: Path) -> None:
    settings = load_settings(_pod_environment(render(NODE_VALUES), tmp_path), env_file=None)
    assert settings.qdrant_url is None
    assert settings.data_dir == tmp_path / "data"
    assert settings.litellm_base_url == f"http://{RELEASE}-litellm:4000"
    assert settings.users_file is not None


def test_default_configuration_boots_the_service(tmp_path: Path) -> None:
    settings = load_settings(_pod_environment(render(), tmp_path), env_file=None)
    assert settings.data_dir == tmp_path / "data"
    assert settings.readiness_checks == []


def test_production_example_needs_only_its_operator_secrets(tmp_path: Path) -> None:
    env = _pod_environment(render(PRODUCTION_VALUES), tmp_path)
    # Without the operator's Secrets the service refuses, naming what is missing...
    with pytest.raises(ConfigurationError, match="JWT_SECRET_KEY") as refused:
        load_settings(env, env_file=None)
    assert "USERS_FILE" in str(refused.value)
    # ...and with it (as the kubelet would mount it) it boots.
    secrets_dir = Path(env["SECRETS_DIR"])
    (secrets_dir / "jwt_secret_key").write_text("operator-provided-signing-key-0123456789abcdef")
    Path(env["USERS_FILE"]).write_text("[]\n")
    Path(env["API_KEYS_FILE"]).write_text("[]\n")
    settings = load_settings(env, env_file=None)
    assert settings.embedder == "litellm"
    assert settings.otel_exporter == "otlp"


def test_api_keys_from_values_are_a_keys_file_the_service_loads(tmp_path: Path) -> None:
    from llm_gateway.auth.api_keys import ApiKeyStore, hash_api_key

    key_hash = hash_api_key("lgw-chart-test-key")
    manifests = render(
        KIND_VALUES,
        sets=(
            "apiKeys.list[0].name=batch-jobs",
            f"apiKeys.list[0].keyHash={key_hash}",
            "apiKeys.list[0].role=user",
        ),
    )
    env = _pod_environment(manifests, tmp_path)
    settings = load_settings(env, env_file=None)
    assert settings.api_keys_file is not None
    store = ApiKeyStore.from_file(settings.api_keys_file)
    principal = store.lookup("lgw-chart-test-key")
    assert principal is not None
    assert principal.role == "user"
    assert store.lookup("lgw-some-other-key") is None
