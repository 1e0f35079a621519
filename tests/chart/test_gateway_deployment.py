"""The gateway Deployment keeps the promises the process relies on: probes, drain, security."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from asgi_lifespan import LifespanManager

from llm_gateway.app import create_app
from tests.chart.rendering import (
    KIND_VALUES,
    NODE_VALUES,
    PRODUCTION_VALUES,
    Manifests,
    render,
    render_error,
)
from tests.support.settings import make_settings

pytestmark = pytest.mark.chart

VALUE_SETS = [
    pytest.param((), id="default-values"),
    pytest.param((KIND_VALUES,), id="kind-values"),
    pytest.param((PRODUCTION_VALUES,), id="production-values"),
    pytest.param((NODE_VALUES,), id="node-values"),
]


def _probes(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {kind: container[kind] for kind in ("startupProbe", "livenessProbe", "readinessProbe")}


async def _status_codes(paths: set[str], tmp_path: Path) -> dict[str, int]:
    """Ask the real app (lifespan started) what each path answers."""
    app = create_app(make_settings(tmp_path))
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://pod") as client:
            return {path: (await client.get(path)).status_code for path in sorted(paths)}


async def test_probe_paths_are_routes_the_app_serves(tmp_path: Path) -> None:
    probe_paths = {
        probe["httpGet"]["path"]
        for values in ((), (KIND_VALUES,), (PRODUCTION_VALUES,), (NODE_VALUES,))
        for probe in _probes(render(*values).gateway_container()).values()
    }
    unserved = "/chart-test-path-the-app-does-not-serve"
    answers = await _status_codes(probe_paths | {unserved}, tmp_path)
    # The control shows the question can fail: an unknown path is a 404, not a 200.
    assert answers.pop(unserved) == 404
    assert answers == dict.fromkeys(probe_paths, 200)


@pytest.mark.parametrize("values", VALUE_SETS)
def test_probes_target_the_named_http_port_the_container_listens_on(
    values: tuple[Path, ...],
) -> None:
    manifests = render(*values)
    container = manifests.gateway_container()
    (port,) = container["ports"]
    assert port["name"] == "http"
    assert str(port["containerPort"]) == manifests.gateway_config()["PORT"]
    for probe in _probes(container).values():
        assert probe["httpGet"]["port"] == "http"
    (service_port,) = manifests.get("Service", "demo-llm-gateway")["spec"]["ports"]
    assert service_port["targetPort"] == "http"


def test_probe_roles_and_timings_follow_the_design_table() -> None:
    probes = _probes(render().gateway_container())
    assert probes["startupProbe"]["httpGet"]["path"] == "/livez"
    assert probes["livenessProbe"]["httpGet"]["path"] == "/livez"
    # Readiness is the only probe that turns 503 while draining.
    assert probes["readinessProbe"]["httpGet"]["path"] == "/readyz"
    timings = {
        kind: (p["periodSeconds"], p.get("timeoutSeconds"), p["failureThreshold"])
        for kind, p in probes.items()
    }
    assert timings == {
        "startupProbe": (2, 2, 30),
        "livenessProbe": (10, 2, 3),
        "readinessProbe": (5, 2, 2),
    }


@pytest.mark.parametrize("values", VALUE_SETS)
def test_grace_period_covers_prestop_plus_gunicorn_drain(values: tuple[Path, ...]) -> None:
    manifests = render(*values)
    pod = manifests.gateway()["spec"]["template"]["spec"]
    config = manifests.gateway_config()
    pre_stop = pod["containers"][0]["lifecycle"]["preStop"]
    sleep_seconds = (
        int(pre_stop["sleep"]["seconds"])
        if "sleep" in pre_stop
        else int(pre_stop["exec"]["command"][-1])
    )
    graceful = float(config["GUNICORN_GRACEFUL_TIMEOUT"])
    assert pod["terminationGracePeriodSeconds"] > sleep_seconds + graceful
    # The inner bound the service itself enforces.
    assert (
        float(config["UVICORN_GRACEFUL_TIMEOUT"]) + float(config["SHUTDOWN_FLUSH_TIMEOUT"])
        < graceful
    )


def test_drain_numbers_reach_the_process_as_env() -> None:
    config = render(
        sets=(
            "drain.uvicornGracefulTimeout=20",
            "drain.shutdownFlushTimeout=4",
            "drain.gunicornGracefulTimeout=28",
            "drain.gunicornTimeout=90",
        )
    ).gateway_config()
    # The drain's timeouts (TRACE_EXPORT_TIMEOUT bounds one upload, not the drain).
    drain = {k: config[k] for k in config if "TIMEOUT" in k and not k.startswith("TRACE_")}
    assert drain == {
        "UVICORN_GRACEFUL_TIMEOUT": "20",
        "SHUTDOWN_FLUSH_TIMEOUT": "4",
        "GUNICORN_GRACEFUL_TIMEOUT": "28",
        "GUNICORN_TIMEOUT": "90",
    }


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        pytest.param(
            ("drain.terminationGracePeriodSeconds=40",),
            "drain.terminationGracePeriodSeconds (40) must be >= drain.preStopSeconds (10) + "
            "drain.gunicornGracefulTimeout (30) + drain.marginSeconds (5) = 45",
            id="grace-shorter-than-prestop-plus-drain",
        ),
        pytest.param(
            ("drain.preStopSeconds=15",),
            "must be >= drain.preStopSeconds (15)",
            id="longer-prestop-without-longer-grace",
        ),
        pytest.param(
            ("drain.uvicornGracefulTimeout=28",),
            "drain.uvicornGracefulTimeout (28) + drain.shutdownFlushTimeout (3) must be below "
            "drain.gunicornGracefulTimeout (30)",
            id="uvicorn-drain-not-below-gunicorn-graceful",
        ),
    ],
)
def test_a_drain_budget_that_does_not_fit_refuses_to_render(
    sets: tuple[str, ...], message: str
) -> None:
    assert message in render_error(sets=sets)


def test_a_longer_grace_period_lets_a_longer_prestop_render() -> None:
    pod = render(
        sets=("drain.preStopSeconds=15", "drain.terminationGracePeriodSeconds=50")
    ).gateway()["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 50


@pytest.mark.parametrize(
    ("kube_version", "mode", "expected"),
    [
        pytest.param("1.29.0", "auto", "exec", id="auto-before-1.30-uses-exec"),
        pytest.param("1.30.0", "auto", "sleep", id="auto-from-1.30-uses-native-sleep"),
        pytest.param("1.35.0", "exec", "exec", id="exec-forced"),
    ],
)
def test_prestop_sleep_action_matches_the_cluster(
    kube_version: str, mode: str, expected: str
) -> None:
    container = render(
        KIND_VALUES, sets=(f"drain.preStopMode={mode}",), kube_version=kube_version
    ).gateway_container()
    pre_stop = container["lifecycle"]["preStop"]
    assert list(pre_stop) == [expected]
    if expected == "sleep":
        assert pre_stop["sleep"] == {"seconds": 5}
    else:
        assert pre_stop["exec"]["command"] == ["/bin/sleep", "5"]


def test_rolling_update_never_drops_below_desired_pods() -> None:
    strategy = render().gateway()["spec"]["strategy"]
    assert strategy == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }


def test_container_runs_the_image_entrypoint_in_exec_form() -> None:
    container = render().gateway_container()
    assert container["command"] == ["llm-gateway"]
    assert container["args"] == ["serve"]


@pytest.mark.parametrize("values", VALUE_SETS)
def test_security_context_is_locked_down(values: tuple[Path, ...]) -> None:
    manifests = render(*values)
    pod = manifests.gateway()["spec"]["template"]["spec"]
    container = manifests.gateway_container()
    context = container["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    assert pod["automountServiceAccountToken"] is False
    # Only /tmp and /data are writable, both emptyDirs.
    volumes = {v["name"]: v for v in pod["volumes"]}
    writable = {
        m["mountPath"]: volumes[m["name"]]
        for m in container["volumeMounts"]
        if not m.get("readOnly")
    }
    assert set(writable) == {"/tmp", "/data"}
    assert all("emptyDir" in volume for volume in writable.values())


def test_resources_follow_the_design_table() -> None:
    resources = render().gateway_container()["resources"]
    assert resources == {
        "requests": {"cpu": "250m", "memory": "512Mi"},
        "limits": {"memory": "1Gi"},
    }


def test_secrets_are_files_in_secrets_dir_named_after_settings() -> None:
    manifests = render(sets=("secrets.litellmApiKey=sk-external",))
    pod = manifests.gateway()["spec"]["template"]["spec"]
    container = manifests.gateway_container()
    secrets_dir = manifests.gateway_config()["SECRETS_DIR"]
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == secrets_dir)
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert {item["path"] for item in volume["secret"]["items"]} == {
        "jwt_secret_key",
        "litellm_api_key",
    }
    secret = manifests.get("Secret", "demo-llm-gateway")
    assert set(secret["data"]) == {"jwt_secret_key", "litellm_api_key"}
    # An explicit key replaces the subchart's master key as the bearer.
    assert "LITELLM_API_KEY" not in {e["name"] for e in container.get("env", [])}


def test_existing_secret_keys_are_mapped_to_the_expected_file_names() -> None:
    manifests = render(PRODUCTION_VALUES)
    pod = manifests.gateway()["spec"]["template"]["spec"]
    secrets = next(v for v in pod["volumes"] if v["name"] == "secrets")["secret"]
    assert secrets["secretName"] == "llm-gateway-secrets"
    assert secrets["items"] == [
        {"key": "jwt-signing-key", "path": "jwt_secret_key"},
        {"key": "litellm-virtual-key", "path": "litellm_api_key"},
    ]
    # The operator's Secret is not duplicated by the chart.
    assert not manifests.has("Secret", "demo-llm-gateway")


def test_users_from_values_become_a_mounted_users_file() -> None:
    manifests = render(KIND_VALUES)
    config = manifests.gateway_config()
    container = manifests.gateway_container()
    mount_dirs = {m["mountPath"] for m in container["volumeMounts"]}
    users_file = Path(config["USERS_FILE"])
    assert str(users_file.parent) in mount_dirs
    secret = manifests.get("Secret", "demo-llm-gateway")
    users = yaml.safe_load(base64.b64decode(secret["data"]["users.yaml"]))
    assert [(u["username"], u["role"]) for u in users] == [("admin", "admin"), ("user", "user")]
    assert all(u["password_hash"].startswith("$argon2id$") for u in users)


def _pdb_count(manifests: Manifests) -> int:
    return len(manifests.of_kind("PodDisruptionBudget"))


@pytest.mark.parametrize(
    ("sets", "expected"),
    [
        pytest.param(("replicaCount=1",), 0, id="one-replica-no-pdb"),
        pytest.param(("replicaCount=2",), 1, id="two-replicas-pdb"),
        pytest.param(("replicaCount=1", "autoscaling.enabled=true"), 1, id="hpa-pdb"),
        pytest.param(
            ("autoscaling.enabled=true", "autoscaling.minReplicas=1"), 0, id="hpa-down-to-one"
        ),
        pytest.param(("replicaCount=3", "podDisruptionBudget.enabled=false"), 0, id="disabled"),
    ],
)
def test_pdb_only_when_more_than_one_pod_can_exist(sets: tuple[str, ...], expected: int) -> None:
    assert _pdb_count(render(sets=sets)) == expected


def test_autoscaling_replaces_the_fixed_replica_count() -> None:
    manifests = render(PRODUCTION_VALUES)
    assert "replicas" not in manifests.gateway()["spec"]
    (hpa,) = manifests.of_kind("HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == manifests.gateway()["metadata"]["name"]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 12)
