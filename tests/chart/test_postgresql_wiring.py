"""MLflow's store on the chart's PostgreSQL workload (mlflow.postgresql.enabled): the StatefulSet
the mlflow chart carries as its own subchart, the URI and password MLflow gets from it, the
replicas a database allows, and the store-init container that makes the schema once."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest
import yaml

from tests.chart.rendering import (
    CHART,
    KIND_VALUES,
    RELEASE,
    Manifests,
    env_of,
    render,
    render_error,
)

pytestmark = pytest.mark.chart

POSTGRES = f"{RELEASE}-postgresql"
MLFLOW = f"{RELEASE}-mlflow"
ON = ("mlflow.postgresql.enabled=true",)
URI = f"postgresql+psycopg://mlflow@{POSTGRES}:5432/mlflow"
SCRIPT = CHART / "charts" / "mlflow" / "files" / "init_store.py"


def _pod(manifests: Manifests, kind: str, name: str) -> dict[str, Any]:
    return dict(manifests.get(kind, name)["spec"]["template"]["spec"])


def _container(manifests: Manifests, kind: str, name: str) -> dict[str, Any]:
    (container,) = _pod(manifests, kind, name)["containers"]
    return dict(container)


def _mlflow(manifests: Manifests) -> dict[str, Any]:
    return _container(manifests, "Deployment", MLFLOW)


def _postgres(manifests: Manifests) -> dict[str, Any]:
    return _container(manifests, "StatefulSet", POSTGRES)


def test_by_default_there_is_no_postgresql_and_mlflow_keeps_sqlite() -> None:
    manifests = render(KIND_VALUES)
    assert not [d for d in manifests.documents if d["metadata"]["name"].startswith(POSTGRES)]
    pod = _pod(manifests, "Deployment", MLFLOW)
    assert "initContainers" not in pod
    command = _mlflow(manifests)["command"]
    assert command[command.index("--backend-store-uri") + 1].startswith("sqlite:////mlflow/")
    assert not manifests.has("ConfigMap", f"{MLFLOW}-store-init")


def test_mlflow_is_wired_to_the_postgresql_service_and_secret() -> None:
    manifests = render(KIND_VALUES, sets=ON)
    mlflow = _mlflow(manifests)
    command = mlflow["command"]
    assert command[command.index("--backend-store-uri") + 1] == "$(MLFLOW_BACKEND_STORE_URI)"
    env = env_of(mlflow)
    assert env["MLFLOW_BACKEND_STORE_URI"]["value"] == URI
    reference = {"name": POSTGRES, "key": "password"}
    assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"] == reference
    # The server was initialised with the very same Secret key.
    postgres_env = env_of(_postgres(manifests))
    assert postgres_env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"] == reference
    assert postgres_env["POSTGRES_USER"]["value"] == "mlflow"
    assert postgres_env["POSTGRES_DB"]["value"] == "mlflow"
    # The URI's host is the Service, selecting the StatefulSet's pod on the server's port.
    service = manifests.get("Service", POSTGRES)
    pod_labels = manifests.get("StatefulSet", POSTGRES)["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    (port,) = service["spec"]["ports"]
    assert (port["port"], port["targetPort"]) == (5432, "postgresql")
    assert {p["name"]: p["containerPort"] for p in _postgres(manifests)["ports"]} == {
        "postgresql": 5432
    }


@pytest.mark.parametrize(
    ("sets", "user", "database", "port", "reference"),
    [
        pytest.param(
            ("mlflow.postgresql.auth.username=tracker", "mlflow.postgresql.auth.database=traces"),
            "tracker",
            "traces",
            5432,
            {"name": POSTGRES, "key": "password"},
            id="user-and-database",
        ),
        pytest.param(
            ("mlflow.postgresql.service.port=6543",),
            "mlflow",
            "mlflow",
            6543,
            {"name": POSTGRES, "key": "password"},
            id="service-port",
        ),
        pytest.param(
            (
                "mlflow.postgresql.auth.existingSecret=pg-auth",
                "mlflow.postgresql.auth.secretKey=pw",
            ),
            "mlflow",
            "mlflow",
            5432,
            {"name": "pg-auth", "key": "pw"},
            id="existing-secret",
        ),
    ],
)
def test_postgresql_overrides_reach_both_the_server_and_mlflow(
    sets: tuple[str, ...], user: str, database: str, port: int, reference: dict[str, str]
) -> None:
    manifests = render(KIND_VALUES, sets=(*ON, *sets))
    (store_init,) = _pod(manifests, "Deployment", MLFLOW)["initContainers"]
    for env in (env_of(_mlflow(manifests)), env_of(store_init)):
        assert env["MLFLOW_BACKEND_STORE_URI"]["value"] == (
            f"postgresql+psycopg://{user}@{POSTGRES}:{port}/{database}"
        )
        assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"] == reference
    postgres_env = env_of(_postgres(manifests))
    assert postgres_env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"] == reference
    assert postgres_env["POSTGRES_USER"]["value"] == user
    assert postgres_env["POSTGRES_DB"]["value"] == database
    assert manifests.get("Service", POSTGRES)["spec"]["ports"][0]["port"] == port
    # A Secret you manage: the chart makes none of its own.
    assert manifests.has("Secret", POSTGRES) == (reference["name"] == POSTGRES)


def _generated_password(manifests: Manifests) -> str:
    secret = manifests.get("Secret", POSTGRES)
    assert set(secret["data"]) == {"password"} and "stringData" not in secret
    return base64.b64decode(secret["data"]["password"]).decode()


def test_the_password_is_generated_into_the_secret_and_nowhere_else_in_plain_text() -> None:
    manifests = render(KIND_VALUES, sets=(*ON, "mlflow.replicaCount=2"))
    password = _generated_password(manifests)
    assert len(password) == 32 and password.isalnum()
    others = yaml.safe_dump_all([doc for doc in manifests.documents if doc["kind"] != "Secret"])
    found = password in others
    assert not found, "the password is in plain text outside its Secret"
    # Nor base64-encoded outside its Secret.
    found = base64.b64encode(password.encode()).decode() in others
    assert not found, "the password is outside its Secret, base64-encoded"


@pytest.mark.parametrize(
    "sets",
    [
        pytest.param(ON, id="postgresql"),
        pytest.param(("mlflow.database.existingSecret=mlflow-db",), id="external-database"),
    ],
)
def test_several_mlflow_replicas_are_allowed_on_a_database(sets: tuple[str, ...]) -> None:
    manifests = render(KIND_VALUES, sets=(*sets, "mlflow.replicaCount=3"))
    deployment = manifests.get("Deployment", MLFLOW)
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["strategy"] == {"type": "RollingUpdate"}
    # No sqlite file to keep: no claim; each replica keeps artifacts in its own emptyDir.
    assert not manifests.has("PersistentVolumeClaim", MLFLOW)


@pytest.mark.parametrize(
    "sets",
    [
        pytest.param((), id="sqlite-pvc"),
        pytest.param(("mlflow.persistence.enabled=false",), id="sqlite-emptydir"),
        pytest.param(("mlflow.postgresql.enabled=false",), id="postgresql-off"),
    ],
)
def test_several_mlflow_replicas_are_refused_on_sqlite(sets: tuple[str, ...]) -> None:
    message = render_error(KIND_VALUES, sets=(*sets, "mlflow.replicaCount=2"))
    assert "mlflow.replicaCount > 1 needs a database store" in message
    assert "mlflow.postgresql.enabled" in message


def test_two_mlflow_stores_at_once_are_refused() -> None:
    message = render_error(KIND_VALUES, sets=(*ON, "mlflow.database.existingSecret=mlflow-db"))
    assert "choose one" in message


@pytest.mark.parametrize(
    "sets",
    [
        pytest.param(ON, id="postgresql"),
        pytest.param(("mlflow.database.existingSecret=mlflow-db",), id="external-database"),
    ],
)
def test_store_init_runs_the_charts_script_before_every_server_on_a_database(
    sets: tuple[str, ...],
) -> None:
    manifests = render(KIND_VALUES, sets=sets)
    pod = _pod(manifests, "Deployment", MLFLOW)
    (init,) = pod["initContainers"]
    mlflow = _mlflow(manifests)
    # MLflow's own image and Python: the script imports MLflow's store.
    assert init["image"] == mlflow["image"]
    assert init["command"] == ["python", "/etc/mlflow-store-init/init_store.py"]
    assert env_of(init)["MLFLOW_BACKEND_STORE_URI"] == env_of(mlflow)["MLFLOW_BACKEND_STORE_URI"]
    assert env_of(init)["MLFLOW_STORE_WAIT_SECONDS"]["value"] == "300"
    mount = next(m for m in init["volumeMounts"] if m["mountPath"] == "/etc/mlflow-store-init")
    assert mount["readOnly"] is True
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    config_map = manifests.get("ConfigMap", volume["configMap"]["name"])
    assert config_map["data"]["init_store.py"] == SCRIPT.read_text().rstrip("\n")
    # The same security context and resources as the server (no larger pod request).
    assert init["securityContext"] == mlflow["securityContext"]
    assert init["resources"] == mlflow["resources"]
    # A changed script rolls the pods.
    annotations = manifests.get("Deployment", MLFLOW)["spec"]["template"]["metadata"]
    checksum = annotations["annotations"]["checksum/store-init"]
    assert len(checksum) == len(hashlib.sha256().hexdigest())


@pytest.mark.parametrize(
    ("sets", "image"),
    [
        pytest.param((), "ghcr.io/mlflow/mlflow:v3.17.2", id="sqlite-plain-image"),
        pytest.param(ON, "ghcr.io/mlflow/mlflow:v3.17.2-full", id="postgresql-full-image"),
        pytest.param(
            (*ON, "mlflow.image.databaseTag="), "ghcr.io/mlflow/mlflow:v3.17.2", id="no-db-tag"
        ),
    ],
)
def test_a_database_store_runs_mlflows_image_with_the_postgresql_driver(
    sets: tuple[str, ...], image: str
) -> None:
    # MLflow's plain image has no psycopg; its -full variant has.
    assert _mlflow(render(sets=sets))["image"] == image


def test_postgresql_runs_non_root_read_only_with_pg_isready_probes_and_a_fast_stop() -> None:
    manifests = render(KIND_VALUES, sets=ON)
    statefulset = manifests.get("StatefulSet", POSTGRES)
    pod = statefulset["spec"]["template"]["spec"]
    container = _postgres(manifests)
    # The official image by default, the same major as the project's Debian image.
    assert container["image"] == "postgres:15-bookworm"
    assert "command" not in container and "args" not in container  # the image's entrypoint
    assert statefulset["spec"]["replicas"] == 1
    assert manifests.get("Service", statefulset["spec"]["serviceName"])["spec"]["clusterIP"] == (
        "None"
    )
    context = pod["securityContext"]
    assert (context["runAsNonRoot"], context["runAsUser"], context["fsGroup"]) == (True, 999, 999)
    assert context["fsGroupChangePolicy"] == "OnRootMismatch"
    assert pod["automountServiceAccountToken"] is False
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    writable = {m["mountPath"] for m in container["volumeMounts"]}
    assert writable == {"/var/lib/postgresql/data", "/var/run/postgresql", "/tmp"}
    # PGDATA below the volume's root (lost+found, fsGroup's mode on the root).
    assert env_of(container)["PGDATA"]["value"] == "/var/lib/postgresql/data/pgdata"
    is_ready = [
        "pg_isready",
        "--host=127.0.0.1",
        "--port=5432",
        "--username=mlflow",
        "--dbname=mlflow",
        "--quiet",
    ]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["exec"]["command"] == is_ready, probe
    stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert stop[:5] == ["pg_ctl", "stop", "-D", "/var/lib/postgresql/data/pgdata", "-m"]
    assert stop[5] == "fast"
    assert int(stop[stop.index("-t") + 1]) < pod["terminationGracePeriodSeconds"]
    assert container["resources"]["limits"]["memory"]


def test_postgresql_keeps_its_data_and_password_on_a_claim_that_outlives_the_release() -> None:
    manifests = render(
        KIND_VALUES,
        sets=(
            *ON,
            "mlflow.postgresql.persistence.size=20Gi",
            "mlflow.postgresql.persistence.storageClassName=fast",
        ),
    )
    statefulset = manifests.get("StatefulSet", POSTGRES)
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert claim["spec"]["resources"]["requests"]["storage"] == "20Gi"
    assert claim["spec"]["storageClassName"] == "fast"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    volumes = {v["name"] for v in statefulset["spec"]["template"]["spec"]["volumes"]}
    assert "data" not in volumes
    # The claim stays after an uninstall, and its cluster opens only with this password.
    secret = manifests.get("Secret", POSTGRES)
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_postgresql_without_persistence_uses_a_sized_emptydir_and_keeps_nothing() -> None:
    manifests = render(
        KIND_VALUES,
        sets=(
            *ON,
            "mlflow.postgresql.persistence.enabled=false",
            "mlflow.postgresql.persistence.size=3Gi",
        ),
    )
    statefulset = manifests.get("StatefulSet", POSTGRES)
    assert "volumeClaimTemplates" not in statefulset["spec"]
    volumes = {v["name"]: v for v in statefulset["spec"]["template"]["spec"]["volumes"]}
    assert volumes["data"] == {"name": "data", "emptyDir": {"sizeLimit": "3Gi"}}
    annotations = manifests.get("Secret", POSTGRES)["metadata"].get("annotations", {})
    assert "helm.sh/resource-policy" not in annotations


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param("mlflow.postgresql.nosuchKey=1", id="unknown-key"),
        pytest.param("mlflow.postgresql.auth.nosuchKey=1", id="unknown-auth-key"),
        pytest.param("mlflow.postgresql.persistence.nosuchKey=1", id="unknown-persistence-key"),
        pytest.param("mlflow.postgresql.auth.database=Bad-Name", id="bad-database-name"),
        pytest.param("mlflow.postgresql.auth.username=", id="empty-user"),
        pytest.param("mlflow.postgresql.service.port=70000", id="bad-port"),
        pytest.param("mlflow.database.waitSeconds=1", id="wait-too-short"),
        pytest.param("mlflow.image.nosuchKey=1", id="unknown-image-key"),
    ],
)
def test_the_schema_refuses_bad_postgresql_values(bad: str) -> None:
    message = render_error(KIND_VALUES, sets=(*ON, bad))
    assert "values don't meet the specifications of the schema" in message
