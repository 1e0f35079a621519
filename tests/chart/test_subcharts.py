"""LiteLLM, Qdrant and MLflow subcharts: real health paths, Services, storage, and the wiring."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.rendering import (
    KIND_VALUES,
    NAMESPACE,
    RELEASE,
    Manifests,
    RenderFailed,
    env_of,
    render,
)

pytestmark = pytest.mark.chart

# (workload kind, name, {probe: path}, container port) per subchart: the paths each image serves.
SUBCHARTS = {
    "litellm": (
        "Deployment",
        f"{RELEASE}-litellm",
        {
            "startupProbe": "/health/liveliness",
            "livenessProbe": "/health/liveliness",
            "readinessProbe": "/health/readiness",
        },
        4000,
    ),
    "qdrant": (
        "StatefulSet",
        f"{RELEASE}-qdrant",
        {"startupProbe": "/healthz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"},
        6333,
    ),
    "mlflow": (
        "Deployment",
        f"{RELEASE}-mlflow",
        {"startupProbe": "/health", "livenessProbe": "/health", "readinessProbe": "/health"},
        5000,
    ),
}
ALL_OFF = ("litellm.enabled=false", "qdrant.enabled=false", "mlflow.enabled=false")
EXTERNAL = "external.litellmUrl=http://litellm.shared:4000"


def _container(workload: dict[str, Any]) -> dict[str, Any]:
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    return container


@pytest.mark.parametrize("name", list(SUBCHARTS))
def test_enabled_subchart_renders_a_workload_with_probes_on_its_health_paths(name: str) -> None:
    kind, workload_name, paths, port = SUBCHARTS[name]
    manifests = render(KIND_VALUES)
    container = _container(manifests.get(kind, workload_name))
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["http"] == port
    for probe, path in paths.items():
        assert container[probe]["httpGet"] == {"path": path, "port": "http"}, probe
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]["memory"]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]


@pytest.mark.parametrize("name", list(SUBCHARTS))
def test_enabled_subchart_has_a_service_selecting_its_pods(name: str) -> None:
    kind, workload_name, _, port = SUBCHARTS[name]
    manifests = render(KIND_VALUES)
    service = manifests.get("Service", workload_name)
    pod_labels = manifests.get(kind, workload_name)["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    http = next(p for p in service["spec"]["ports"] if p["name"] == "http")
    assert (http["port"], http["targetPort"]) == (port, "http")


@pytest.mark.parametrize("name", list(SUBCHARTS))
def test_disabled_subchart_renders_nothing(name: str) -> None:
    sets = (f"{name}.enabled=false", EXTERNAL)
    manifests = render(KIND_VALUES, sets=sets)
    names = {doc["metadata"]["name"] for doc in manifests.documents}
    assert not any(n.startswith(f"{RELEASE}-{name}") for n in names), names


def test_gateway_points_at_the_subchart_services_when_enabled() -> None:
    config = render(KIND_VALUES).gateway_config()
    assert config["LITELLM_BASE_URL"] == f"http://{RELEASE}-litellm:4000"
    assert config["QDRANT_URL"] == f"http://{RELEASE}-qdrant:6333"
    assert config["MLFLOW_TRACKING_URI"] == f"http://{RELEASE}-mlflow:5000"


def test_gateway_points_at_external_urls_when_subcharts_are_disabled() -> None:
    config = render(
        sets=(
            *ALL_OFF,
            EXTERNAL,
            "external.qdrantUrl=https://qdrant.example.com:6333",
            "external.mlflowTrackingUri=http://mlflow.tools:5000",
        )
    ).gateway_config()
    assert config["LITELLM_BASE_URL"] == "http://litellm.shared:4000"
    assert config["QDRANT_URL"] == "https://qdrant.example.com:6333"
    assert config["MLFLOW_TRACKING_URI"] == "http://mlflow.tools:5000"


def test_without_qdrant_or_mlflow_the_gateway_falls_back_to_local_modes() -> None:
    # No QDRANT_URL: embedded Qdrant under DATA_DIR; no MLFLOW_TRACKING_URI: journal only.
    config = render(sets=(*ALL_OFF, EXTERNAL)).gateway_config()
    assert "QDRANT_URL" not in config
    assert "MLFLOW_TRACKING_URI" not in config
    assert config["DATA_DIR"] == "/data"


def test_gateway_uses_the_litellm_master_key_as_its_bearer() -> None:
    manifests = render(KIND_VALUES)
    env = env_of(manifests.gateway_container())
    reference = env["LITELLM_API_KEY"]["valueFrom"]["secretKeyRef"]
    secret = manifests.get("Secret", reference["name"])
    assert reference["key"] in secret["data"]
    litellm = _container(manifests.get("Deployment", f"{RELEASE}-litellm"))
    assert {"secretRef": {"name": reference["name"]}} in litellm["envFrom"]


def test_litellm_runs_the_shipped_config_offline() -> None:
    manifests = render(KIND_VALUES)
    litellm = _container(manifests.get("Deployment", f"{RELEASE}-litellm"))
    config_path = litellm["args"][litellm["args"].index("--config") + 1]
    mount = next(m for m in litellm["volumeMounts"] if config_path.startswith(m["mountPath"]))
    assert mount["readOnly"] is True
    env = env_of(litellm)
    assert env["LITELLM_LOCAL_MODEL_COST_MAP"]["value"] == "True"
    config_map = manifests.get("ConfigMap", f"{RELEASE}-litellm")
    assert "smart-router" in config_map["data"]["config.yaml"]


def test_litellm_provider_keys_come_from_its_secret() -> None:
    manifests = render(KIND_VALUES, sets=("litellm.providerKeys.groqApiKey=gsk-test",))
    secret = manifests.get("Secret", f"{RELEASE}-litellm")
    assert set(secret["data"]) == {"LITELLM_MASTER_KEY", "GROQ_API_KEY"}


def test_qdrant_keeps_its_data_on_a_persistent_volume_claim() -> None:
    statefulset = render(KIND_VALUES).get("StatefulSet", f"{RELEASE}-qdrant")
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
    mounts = {m["name"]: m["mountPath"] for m in _container(statefulset)["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == "/qdrant/storage"


def test_qdrant_api_key_reaches_both_qdrant_and_the_gateway() -> None:
    manifests = render(KIND_VALUES, sets=("qdrant.apiKey=qdrant-test-key",))
    qdrant_env = env_of(_container(manifests.get("StatefulSet", f"{RELEASE}-qdrant")))
    gateway_env = env_of(manifests.gateway_container())
    assert (
        qdrant_env["QDRANT__SERVICE__API_KEY"]["valueFrom"]
        == gateway_env["QDRANT_API_KEY"]["valueFrom"]
    )


def _mlflow(manifests: Manifests) -> dict[str, Any]:
    return _container(manifests.get("Deployment", f"{RELEASE}-mlflow"))


def test_mlflow_stores_sqlite_and_artifacts_on_a_pvc() -> None:
    manifests = render(KIND_VALUES)
    deployment = manifests.get("Deployment", f"{RELEASE}-mlflow")
    command = _mlflow(manifests)["command"]
    store = command[command.index("--backend-store-uri") + 1]
    artifacts = command[command.index("--artifacts-destination") + 1]
    assert store.startswith("sqlite:////mlflow/")
    assert artifacts.startswith("/mlflow/")
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    mount = next(m for m in _mlflow(manifests)["volumeMounts"] if m["mountPath"] == "/mlflow")
    claim = volumes[mount["name"]]["persistentVolumeClaim"]["claimName"]
    assert manifests.get("PersistentVolumeClaim", claim)
    # One sqlite writer: the old pod stops before the new one opens the file.
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}


def test_mlflow_allowed_hosts_include_the_in_cluster_names() -> None:
    command = _mlflow(render(KIND_VALUES, sets=("mlflow.extraAllowedHosts={mlflow.example.com}",)))[
        "command"
    ]
    hosts = set(command[command.index("--allowed-hosts") + 1].split(","))
    service = f"{RELEASE}-mlflow"
    expected = {
        service,
        f"{service}:5000",
        f"{service}.{NAMESPACE}",
        f"{service}.{NAMESPACE}:5000",
        f"{service}.{NAMESPACE}.svc",
        f"{service}.{NAMESPACE}.svc.cluster.local:5000",
        "localhost:5000",
        "mlflow.example.com",
    }
    assert expected <= hosts
    # The gateway's own tracking URI host is one of them.
    config = render(KIND_VALUES).gateway_config()
    assert config["MLFLOW_TRACKING_URI"].removeprefix("http://") in hosts


def test_mlflow_without_persistence_uses_a_sized_emptydir_and_no_claim() -> None:
    # For clusters with no storage provisioner, where a PVC would stay Pending.
    manifests = render(
        KIND_VALUES, sets=("mlflow.persistence.enabled=false", "mlflow.persistence.size=3Gi")
    )
    assert not manifests.has("PersistentVolumeClaim", f"{RELEASE}-mlflow")
    pod = manifests.get("Deployment", f"{RELEASE}-mlflow")["spec"]["template"]["spec"]
    mount = next(m for m in _mlflow(manifests)["volumeMounts"] if m["mountPath"] == "/mlflow")
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume == {"name": mount["name"], "emptyDir": {"sizeLimit": "3Gi"}}


def test_mlflow_runs_without_its_job_runner() -> None:
    # Found on the real node: the runner's huey consumers OOM-kill the pod at a 1 GiB limit.
    env = {item["name"]: item.get("value") for item in _mlflow(render(KIND_VALUES))["env"]}
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"


DB_SECRET = ("mlflow.database.existingSecret=mlflow-db", "mlflow.database.key=uri")


def test_mlflow_on_a_database_reads_its_url_from_the_secret_and_may_scale() -> None:
    manifests = render(KIND_VALUES, sets=(*DB_SECRET, "mlflow.replicaCount=3"))
    deployment = manifests.get("Deployment", f"{RELEASE}-mlflow")
    container = _mlflow(manifests)
    command = container["command"]
    # The kubelet expands the variable: the URL and its password stay out of the pod spec.
    assert command[command.index("--backend-store-uri") + 1] == "$(MLFLOW_BACKEND_STORE_URI)"
    (store_env,) = [e for e in container["env"] if e["name"] == "MLFLOW_BACKEND_STORE_URI"]
    assert store_env["valueFrom"] == {"secretKeyRef": {"name": "mlflow-db", "key": "uri"}}
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["strategy"] == {"type": "RollingUpdate"}
    # No sqlite file to keep: no claim, artifacts on each replica's emptyDir.
    assert not manifests.has("PersistentVolumeClaim", f"{RELEASE}-mlflow")


@pytest.mark.parametrize(
    "sets",
    [
        pytest.param(("mlflow.replicaCount=2",), id="sqlite-pvc"),
        pytest.param(("mlflow.replicaCount=2", "mlflow.persistence.enabled=false"), id="emptydir"),
    ],
)
def test_mlflow_refuses_several_replicas_on_sqlite(sets: tuple[str, ...]) -> None:
    with pytest.raises(RenderFailed, match=r"needs a database store"):
        render(KIND_VALUES, sets=sets)


def test_the_trace_export_and_journal_bounds_reach_the_gateway() -> None:
    config = render(
        KIND_VALUES,
        sets=(
            "config.traceJournal.maxBytes=20000000",
            "config.traceJournal.maxFiles=3",
            "config.traceExport.batchSize=50",
            "config.traceExport.concurrency=2",
            "config.traceExport.timeoutSeconds=7",
            "config.traceExport.backlogWarnBytes=30000000",
        ),
    ).gateway_config()
    assert {k: v for k, v in config.items() if k.startswith("TRACE_")} == {
        "TRACE_JOURNAL_MAX_BYTES": "20000000",
        "TRACE_JOURNAL_MAX_FILES": "3",
        "TRACE_EXPORT_BATCH_SIZE": "50",
        "TRACE_EXPORT_CONCURRENCY": "2",
        "TRACE_EXPORT_TIMEOUT": "7",
        "TRACE_BACKLOG_WARN_BYTES": "30000000",
    }
