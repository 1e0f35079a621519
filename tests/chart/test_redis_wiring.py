"""The rate-limit store the chart gives the gateway: the redis subchart, an external Redis URL
from a Secret, or (neither) the service's embedded store, shared by the workers of each pod."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.rendering import (
    KIND_VALUES,
    PRODUCTION_VALUES,
    RELEASE,
    env_of,
    render,
    render_error,
)

pytestmark = pytest.mark.chart

REDIS = f"{RELEASE}-redis"


def _redis_container(manifests: Any) -> dict[str, Any]:
    (container,) = manifests.get("Deployment", REDIS)["spec"]["template"]["spec"]["containers"]
    return dict(container)


def test_by_default_there_is_no_redis_and_the_gateway_keeps_its_embedded_store() -> None:
    manifests = render(KIND_VALUES)
    assert not [d for d in manifests.documents if d["metadata"]["name"].startswith(REDIS)]
    config = manifests.gateway_config()
    assert "RATE_LIMIT_STORAGE_URI" not in config  # the service's default: sqlite://
    assert config["RATE_LIMIT_STORAGE_FAILURE"] == "open"
    assert "RATE_LIMIT_STORAGE_URI" not in env_of(manifests.gateway_container())


def test_the_redis_subchart_is_wired_into_the_gateway() -> None:
    manifests = render(KIND_VALUES, sets=("redis.enabled=true",))
    config = manifests.gateway_config()
    assert config["RATE_LIMIT_STORAGE_URI"] == f"redis://{REDIS}:6379/0"
    service = manifests.get("Service", REDIS)
    pod_labels = manifests.get("Deployment", REDIS)["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    (port,) = service["spec"]["ports"]
    assert (port["port"], port["targetPort"]) == (6379, "redis")
    # No password set: none is asked for, none is passed.
    assert "--requirepass" not in _redis_container(manifests)["args"]
    assert "RATE_LIMIT_STORAGE_PASSWORD" not in env_of(manifests.gateway_container())


def test_redis_runs_non_root_read_only_without_persistence_and_upstream_image() -> None:
    manifests = render(KIND_VALUES, sets=("redis.enabled=true",))
    deployment = manifests.get("Deployment", REDIS)
    pod = deployment["spec"]["template"]["spec"]
    container = _redis_container(manifests)
    assert container["image"].startswith("redis:7")
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    args = container["args"]
    assert args[args.index("--save") + 1] == "" and args[args.index("--appendonly") + 1] == "no"
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/data", "/tmp"}
    assert all("emptyDir" in v for v in pod["volumes"])
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["tcpSocket"] == {"port": "redis"}
    assert container["resources"]["limits"]["memory"]
    # One server, never two at once: the pods must all count in the same place.
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}


@pytest.mark.parametrize(
    ("sets", "secret_name"),
    [
        pytest.param(("redis.password=redis-test-pw",), REDIS, id="chart-secret"),
        pytest.param(("redis.existingSecret=my-redis",), "my-redis", id="existing-secret"),
    ],
)
def test_a_redis_password_reaches_redis_and_the_gateway_from_one_secret(
    sets: tuple[str, ...], secret_name: str
) -> None:
    manifests = render(KIND_VALUES, sets=("redis.enabled=true", *sets))
    container = _redis_container(manifests)
    redis_ref = env_of(container)["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]
    gateway_env = env_of(manifests.gateway_container())
    gateway_ref = gateway_env["RATE_LIMIT_STORAGE_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert redis_ref == gateway_ref == {"name": secret_name, "key": "redis-password"}
    args = container["args"]
    assert args[args.index("--requirepass") + 1] == "$(REDIS_PASSWORD)"
    # The password never sits in the ConfigMap or the URL.
    config = manifests.gateway_config()
    assert "redis-test-pw" not in str(config)
    assert config["RATE_LIMIT_STORAGE_URI"] == f"redis://{REDIS}:6379/0"
    if secret_name == REDIS:
        assert "redis-password" in manifests.get("Secret", REDIS)["data"]


def test_an_external_redis_url_comes_from_a_secret() -> None:
    manifests = render(PRODUCTION_VALUES)
    env = env_of(manifests.gateway_container())
    assert env["RATE_LIMIT_STORAGE_URI"]["valueFrom"]["secretKeyRef"] == {
        "name": "llm-gateway-redis",
        "key": "url",
    }
    config = manifests.gateway_config()
    assert "RATE_LIMIT_STORAGE_URI" not in config
    assert config["RATE_LIMIT_STORAGE_FAILURE"] == "closed"


def test_two_rate_limit_stores_at_once_are_refused() -> None:
    message = render_error(
        KIND_VALUES, sets=("redis.enabled=true", "external.rateLimitStorage.existingSecret=other")
    )
    assert "choose one" in message


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param("redis.nosuchKey=1", id="unknown-key"),
        pytest.param("redis.maxMemory=lots", id="bad-maxmemory"),
        pytest.param("config.rateLimitStorageFailure=maybe", id="bad-failure-mode"),
    ],
)
def test_the_schema_refuses_bad_redis_values(bad: str) -> None:
    message = render_error(KIND_VALUES, sets=("redis.enabled=true", bad))
    assert "values don't meet the specifications of the schema" in message
