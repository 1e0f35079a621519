"""k8s/values-node.yaml: the chart on our single real node runs only images built on it, no PVCs.

The node has no registry (nothing can be pulled) and no storage provisioner (a PVC would stay
Pending and its pod unscheduled), and 2 cores shared with the control plane.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from devstack.node import image_check
from devstack.node.images import IMAGES

from tests.chart.rendering import NODE_VALUES, RELEASE, Manifests, render

pytestmark = pytest.mark.chart

# What the release may request on the 2-core node: the control plane's own pods (apiserver,
# etcd, scheduler, controller manager, CoreDNS) take about 0.8 cores of requests.
NODE_CPU_BUDGET_MILLICORES = 500
UPSTREAM_REPOSITORIES = {
    "litellm": "ghcr.io/berriai/litellm",
    "qdrant": "qdrant/qdrant",
    "mlflow": "ghcr.io/mlflow/mlflow",
    "postgresql": "postgres",
}


def _pod_specs(manifests: Manifests) -> Iterator[tuple[str, dict[str, Any], int]]:
    """(object name, pod spec, replicas) of every workload and bare Pod (the helm test)."""
    for doc in manifests.documents:
        if doc["kind"] in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
            yield (
                doc["metadata"]["name"],
                doc["spec"]["template"]["spec"],
                doc["spec"].get("replicas", 1),
            )
        elif doc["kind"] == "Pod":
            yield doc["metadata"]["name"], doc["spec"], 0  # a hook, not part of the steady state


def _containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod["containers"]]


def _millicores(quantity: str) -> int:
    return int(quantity[:-1]) if quantity.endswith("m") else int(float(quantity) * 1000)


def _pod_cpu_request(pod: dict[str, Any]) -> int:
    """What the scheduler reserves for the pod: its containers' sum, or its largest init
    container's request if that is larger (init containers run one at a time, before them)."""
    main = sum(_millicores(c["resources"]["requests"]["cpu"]) for c in pod["containers"])
    init = [_millicores(c["resources"]["requests"]["cpu"]) for c in pod.get("initContainers", [])]
    return max([main, *init])


def test_every_container_runs_a_locally_built_image_that_is_never_pulled() -> None:
    seen = set()
    for name, pod, _ in _pod_specs(render(NODE_VALUES)):
        for container in _containers(pod):
            assert container["image"] in IMAGES, (name, container["image"])
            assert container["imagePullPolicy"] == "Never", (name, container["name"])
            seen.add(container["image"])
    # All are used: the gateway (and its helm test), LiteLLM, MLflow (and its store-init) and
    # PostgreSQL.
    assert seen == set(IMAGES)


def test_nothing_asks_for_a_persistent_volume() -> None:
    manifests = render(NODE_VALUES)
    assert "PersistentVolumeClaim" not in manifests.kinds()
    for name, pod, _ in _pod_specs(manifests):
        assert not any("persistentVolumeClaim" in v for v in pod.get("volumes", [])), name
    assert not any(doc.get("spec", {}).get("volumeClaimTemplates") for doc in manifests.documents)


def test_two_mlflow_replicas_share_the_postgresql_workload_whose_data_is_an_emptydir() -> None:
    manifests = render(NODE_VALUES)
    mlflow = manifests.get("Deployment", f"{RELEASE}-mlflow")
    assert mlflow["spec"]["replicas"] == 2
    pod = mlflow["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {item["name"]: item for item in container["env"]}
    assert env["MLFLOW_BACKEND_STORE_URI"]["value"] == (
        f"postgresql+psycopg://mlflow@{RELEASE}-postgresql:5432/mlflow"
    )
    # Our MLflow image carries psycopg: the database store runs the same tag.
    assert container["image"] == "llm-gateway-mlflow:dev"
    artifacts = next(m for m in container["volumeMounts"] if m["mountPath"] == "/mlflow")
    volume = next(v for v in pod["volumes"] if v["name"] == artifacts["name"])
    assert volume["emptyDir"] == {"sizeLimit": "1Gi"}
    postgres = manifests.get("StatefulSet", f"{RELEASE}-postgresql")["spec"]
    assert "volumeClaimTemplates" not in postgres
    data = next(v for v in postgres["template"]["spec"]["volumes"] if v["name"] == "data")
    assert data["emptyDir"] == {"sizeLimit": "1Gi"}
    # Without a PVC the Secret goes with the release (test_7_uninstall finds nothing left).
    secret = manifests.get("Secret", f"{RELEASE}-postgresql")
    assert "helm.sh/resource-policy" not in secret["metadata"].get("annotations", {})


def test_without_qdrant_the_gateway_uses_its_embedded_cache() -> None:
    manifests = render(NODE_VALUES)
    assert not any(
        doc["metadata"]["name"].startswith(f"{RELEASE}-qdrant") for doc in manifests.documents
    )
    config = manifests.gateway_config()
    assert "QDRANT_URL" not in config
    assert config["DATA_DIR"] == "/data"
    assert config["LITELLM_BASE_URL"] == f"http://{RELEASE}-litellm:4000"
    assert config["MLFLOW_TRACKING_URI"] == f"http://{RELEASE}-mlflow:5000"


def test_the_release_fits_the_nodes_cpu_budget_with_two_gateway_pods() -> None:
    manifests = render(NODE_VALUES)
    assert manifests.gateway()["spec"]["replicas"] == 2
    requested = sum(replicas * _pod_cpu_request(pod) for _, pod, replicas in _pod_specs(manifests))
    assert requested <= NODE_CPU_BUDGET_MILLICORES


def test_litellm_runs_non_root_on_a_read_only_root_filesystem() -> None:
    deployment = render(NODE_VALUES).get("Deployment", f"{RELEASE}-litellm")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    writable = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
    assert writable == {"/tmp"}


def test_the_chart_defaults_still_name_the_upstream_images() -> None:
    # values-node.yaml overrides them; real users keep pulling the published images.
    manifests = render(sets=("mlflow.postgresql.enabled=true",))
    for name, pod, _ in _pod_specs(manifests):
        for container in _containers(pod):
            assert container["image"] not in IMAGES, name
            assert container.get("imagePullPolicy") != "Never", name
    for subchart, repository in UPSTREAM_REPOSITORIES.items():
        kind = "StatefulSet" if subchart in {"qdrant", "postgresql"} else "Deployment"
        workload = manifests.get(kind, f"{RELEASE}-{subchart}")
        (container,) = workload["spec"]["template"]["spec"]["containers"]
        assert container["image"].startswith(f"{repository}:"), container["image"]


def test_the_image_check_runs_litellm_exactly_as_the_rendered_pod(tmp_path: Path) -> None:
    # `python -m devstack.node.images check` proves the images with this translation.
    manifests = render(NODE_VALUES)
    deployment = manifests.get("Deployment", f"{RELEASE}-litellm")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    argv = image_check.docker_run_argv(manifests.documents, deployment, "x", tmp_path)
    image_at = argv.index(container["image"])
    assert argv[image_at + 1 :] == container["args"]  # after the image's own entrypoint
    options = argv[:image_at]
    for flag in ("--read-only", "--network none", "--user 10001:10001", "--cap-drop ALL"):
        assert flag in " ".join(options), flag
    assert "--tmpfs" in options
    assert options[options.index("--tmpfs") + 1] == "/tmp:rw,exec,size=256m,uid=10001,gid=10001"
    assert f"{tmp_path}/config:/etc/litellm:ro" in options
    assert "config.yaml" in {p.name for p in (tmp_path / "config").iterdir()}
    env = image_check.container_env(manifests.documents, container)
    assert env["LITELLM_MASTER_KEY"] == "sk-node-local-only-master-key"
    assert env["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"


def test_the_image_check_runs_mlflow_in_postgresqls_network_with_the_charts_command(
    tmp_path: Path,
) -> None:
    manifests = render(NODE_VALUES)
    deployment = manifests.get("Deployment", f"{RELEASE}-mlflow")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    network = "container:llm-gateway-image-check-postgresql"
    argv = image_check.docker_run_argv(
        manifests.documents, deployment, "x", tmp_path, network=network
    )
    image_at = argv.index(container["image"])
    assert argv[image_at - 2 : image_at] == ["--entrypoint", "mlflow"]
    env = image_check.container_env(manifests.documents, container)
    # The kubelet's expansion of $(MLFLOW_BACKEND_STORE_URI), done as the kubelet does it.
    expected = [image_check.expand(part, env) for part in container["command"][1:]]
    assert argv[image_at + 1 :] == expected
    store = expected[expected.index("--backend-store-uri") + 1]
    assert store == f"postgresql+psycopg://mlflow@{RELEASE}-postgresql:5432/mlflow"
    assert argv[argv.index("--network") + 1] == network
    # PGPASSWORD is the rendered Secret's password, the one PostgreSQL is initialised with.
    postgres = manifests.get("StatefulSet", f"{RELEASE}-postgresql")
    (server,) = postgres["spec"]["template"]["spec"]["containers"]
    assert (
        env["PGPASSWORD"]
        == image_check.container_env(manifests.documents, server)["POSTGRES_PASSWORD"]
    )
    tmpfs = {
        argv[i + 1].split(":", 1)[0]: argv[i + 1] for i, a in enumerate(argv) if a == "--tmpfs"
    }
    # fsGroup owns the emptyDir in Kubernetes; the tmpfs is owned by that group here.
    assert tmpfs["/mlflow"] == "/mlflow:rw,exec,size=1g,uid=10001,gid=10001"
    assert set(tmpfs) == {"/mlflow", "/tmp"}


def test_the_image_check_runs_mlflows_store_init_first_with_its_script(tmp_path: Path) -> None:
    manifests = render(NODE_VALUES)
    deployment = manifests.get("Deployment", f"{RELEASE}-mlflow")
    (init,) = deployment["spec"]["template"]["spec"]["initContainers"]
    argv = image_check.docker_run_argv(
        manifests.documents, deployment, "x-init", tmp_path, container=init, detach=False
    )
    assert "-d" not in argv  # run to completion, as the kubelet runs an init container
    image_at = argv.index(init["image"])
    assert argv[image_at - 2 : image_at] == ["--entrypoint", "python"]
    assert argv[image_at + 1 :] == ["/etc/mlflow-store-init/init_store.py"]
    assert f"{tmp_path}/store-init:/etc/mlflow-store-init:ro" in argv
    script = (tmp_path / "store-init" / "init_store.py").read_text()
    assert "pg_advisory_lock" in script


def test_the_image_check_runs_postgresql_as_the_rendered_statefulset(tmp_path: Path) -> None:
    manifests = render(NODE_VALUES)
    statefulset = manifests.get("StatefulSet", f"{RELEASE}-postgresql")
    (container,) = statefulset["spec"]["template"]["spec"]["containers"]
    argv = image_check.docker_run_argv(
        manifests.documents, statefulset, "pg", tmp_path, add_hosts=("demo-postgresql:127.0.0.1",)
    )
    # No command: the image's entrypoint (initdb on an empty PGDATA, then postgres) runs.
    assert argv[-1] == container["image"] == "llm-gateway-postgres:dev"
    options = " ".join(argv)
    for flag in ("--read-only", "--network none", "--user 999:999", "--cap-drop ALL"):
        assert flag in options, flag
    assert "--add-host demo-postgresql:127.0.0.1" in options
    tmpfs = {
        argv[i + 1].split(":", 1)[0]: argv[i + 1] for i, a in enumerate(argv) if a == "--tmpfs"
    }
    assert set(tmpfs) == {"/var/lib/postgresql/data", "/var/run/postgresql", "/tmp"}
    env = image_check.container_env(manifests.documents, container)
    assert env["PGDATA"] == "/var/lib/postgresql/data/pgdata"
    assert (env["POSTGRES_USER"], env["POSTGRES_DB"]) == ("mlflow", "mlflow")
    assert len(env["POSTGRES_PASSWORD"]) == 32
