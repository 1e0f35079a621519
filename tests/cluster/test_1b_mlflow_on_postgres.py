"""MLflow on the chart's PostgreSQL workload, as k8s/values-node.yaml runs it: two Ready
replicas sharing one store whose schema was made once (no replica crashed racing for it), the
password nowhere in plain text, and a gateway call's trace found by its X-Request-ID through each
replica.

Read-only against the session's release: nothing here is changed or restarted.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from typing import Any

import httpx

from tests.cluster.conftest import Release, login
from tests.cluster.kube import Kube, port_forward, ready, restarts, wait_for

MLFLOW_SELECTOR = "app.kubernetes.io/name=mlflow,app.kubernetes.io/component=mlflow"
EXPERIMENT = "llm-gateway"  # the gateway's MLFLOW_EXPERIMENT_NAME default
# MLflow (>= 3.5) answers only the Host names the chart allows; a port-forward arrives on a
# random local port, so ask with the name `kubectl port-forward ...:5000` would give.
MLFLOW_HOST = {"Host": "localhost:5000"}


def _mlflow_pods(release: Release) -> list[dict[str, Any]]:
    selector = f"{MLFLOW_SELECTOR},app.kubernetes.io/instance={release.name}"
    return [
        pod
        for pod in release.kube.pods(selector)
        if pod["metadata"].get("deletionTimestamp") is None
    ]


def _init_restarts(pod: dict[str, Any]) -> int:
    return sum(s.get("restartCount", 0) for s in pod["status"].get("initContainerStatuses", []))


def _env(pod: dict[str, Any], container: str) -> dict[str, Any]:
    spec = next(c for c in pod["spec"]["containers"] if c["name"] == container)
    return {item["name"]: item for item in spec.get("env", [])}


def test_mlflow_runs_two_ready_replicas_on_the_postgresql_workload(release: Release) -> None:
    kube = release.kube
    deployment = kube.get("deployment", f"{release.name}-mlflow")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["status"].get("readyReplicas") == 2
    postgres = kube.get("statefulset", f"{release.name}-postgresql")
    assert postgres["status"].get("readyReplicas") == 1

    pods = _mlflow_pods(release)
    assert len(pods) == 2 and all(ready(pod) for pod in pods)
    for pod in pods:
        env = _env(pod, "mlflow")
        assert env["MLFLOW_BACKEND_STORE_URI"]["value"] == (
            f"postgresql+psycopg://mlflow@{release.name}-postgresql:5432/mlflow"
        )
        assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": f"{release.name}-postgresql",
            "key": "password",
        }
        # Started together on an empty database, without store-init's lock one of them crashed
        # on a unique violation and restarted (measured on this node: 3 starts in 3).
        assert restarts(pod) == 0 and _init_restarts(pod) == 0, pod["metadata"]["name"]

    # store-init made the schema in one replica and found it made in the other(s).
    outcomes = []
    for pod in pods:
        log = kube.logs(pod["metadata"]["name"], "-c", "store-init")
        assert "holding the schema lock" in log, log
        outcomes += [line for line in log.splitlines() if "store-init: schema " in line]
    assert len(outcomes) == 2, outcomes
    assert sum(" created in " in line for line in outcomes) <= 1, outcomes
    assert all(" created in " in line or " checked in " in line for line in outcomes), outcomes


def _secret_password(release: Release) -> str:
    secret = release.kube.get("secret", f"{release.name}-postgresql")
    return base64.b64decode(secret["data"]["password"]).decode()


def _digest(text: str) -> str:
    """Compared by digest: a failing assertion prints no password."""
    return hashlib.sha256(text.encode()).hexdigest()


def test_the_postgresql_password_is_in_its_secret_only(release: Release) -> None:
    kube = release.kube
    password = _secret_password(release)
    assert len(password) == 32
    # The objects a reader of the namespace or of the release sees, pods' specs included.
    workloads = kube.kubectl(
        "get", "deployments,statefulsets,pods,configmaps,services", "-o", "json"
    ).stdout
    manifest = kube.helm("get", "manifest", release.name).stdout
    values = kube.helm("get", "values", "--all", release.name, "-o", "json").stdout
    for where, text in (("objects", workloads), ("manifest", manifest), ("values", values)):
        found = password in text
        assert not found, f"the password is in plain text in the release's {where}"
    # And PostgreSQL asks every TCP client for it: no host line of its pg_hba.conf trusts.
    hba = kube.kubectl(
        "exec",
        f"{release.name}-postgresql-0",
        "--",
        "sh",
        "-c",
        'grep -v "^#" "$PGDATA/pg_hba.conf"',
    ).stdout
    remote = [line.split() for line in hba.splitlines() if line.startswith("host")]
    assert remote and all(fields[-1] == "scram-sha-256" for fields in remote), hba


def test_an_upgrade_keeps_the_password_postgresql_was_initialised_with(release: Release) -> None:
    # The chart generates it once and reads it back (`lookup`) at every upgrade: a new one would
    # lock MLflow out of a data directory initialised with the old one.
    before = _digest(_secret_password(release))
    release.upgrade()  # the installed values again: nothing rolls
    assert _digest(_secret_password(release)) == before
    # The running server was initialised with that password and takes it over TCP.
    server = f"{release.name}-postgresql-0"
    initialised = release.kube.kubectl(
        "exec", server, "--", "sh", "-c", 'printf %s "$POSTGRES_PASSWORD" | sha256sum'
    ).stdout.split()[0]
    assert initialised == before
    login = release.kube.kubectl(
        "exec",
        server,
        "--",
        "sh",
        "-c",
        'PGPASSWORD="$POSTGRES_PASSWORD" psql --host=127.0.0.1 --username="$POSTGRES_USER"'
        ' --dbname="$POSTGRES_DB" --no-psqlrc --tuples-only --no-align'
        ' --command="SELECT current_user"',
    )
    assert login.stdout.strip() == "mlflow"


def _experiment_id(mlflow_url: str) -> str:
    response = httpx.get(
        f"{mlflow_url}/api/2.0/mlflow/experiments/get-by-name",
        params={"experiment_name": EXPERIMENT},
        headers=MLFLOW_HOST,
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["experiment"]["experiment_id"])


def _traces(mlflow_url: str, request_id: str) -> list[dict[str, Any]]:
    """MLflow's search API (v3), filtered on the gateway's request_id tag."""
    body = {
        "locations": [
            {
                "type": "MLFLOW_EXPERIMENT",
                "mlflow_experiment": {"experiment_id": _experiment_id(mlflow_url)},
            }
        ],
        "filter": f"tags.request_id = '{request_id}'",
        "max_results": 10,
    }
    response = httpx.post(
        f"{mlflow_url}/api/3.0/mlflow/traces/search", json=body, headers=MLFLOW_HOST, timeout=30
    )
    assert response.status_code == 200, response.text
    traces: list[dict[str, Any]] = response.json().get("traces", [])
    return traces


def _trace_through(kube: Kube, pod: str, request_id: str) -> dict[str, Any]:
    """The request's one trace, asked of this MLflow pod alone."""
    with port_forward(kube, f"pod/{pod}", 5000) as mlflow_url:
        found: list[dict[str, Any]] = []

        def present() -> bool:
            found[:] = _traces(mlflow_url, request_id)
            return bool(found)

        # The gateway exports in the background (batched, 50 ms linger): allow a moment.
        wait_for(f"the trace of {request_id} through {pod}", present, timeout=60, interval=1)
    (trace,) = found
    return trace


def test_a_gateway_calls_trace_is_found_in_mlflow_by_its_request_id(release: Release) -> None:
    request_id = f"cluster-pg-{uuid.uuid4().hex}"
    with port_forward(release.kube, f"service/{release.name}", 8000) as gateway:
        token = login(gateway)
        response = httpx.post(
            f"{gateway}/llm/generate",
            headers={"Authorization": f"Bearer {token}", "X-Request-ID": request_id},
            # A prompt of its own: the answer comes from LiteLLM, not the cache.
            json={"prompt": f"Say hello to {request_id}"},
            timeout=60,
        )
    assert response.status_code == 200, response.text
    assert response.headers["X-Request-ID"] == request_id
    assert response.json()["cached"] is False
    # Both replicas read the same store: the one trace, under the same id, through each.
    traces = [
        _trace_through(release.kube, pod["metadata"]["name"], request_id)
        for pod in _mlflow_pods(release)
    ]
    assert len(traces) == 2
    for trace in traces:
        assert trace["tags"]["request_id"] == request_id
        assert trace["state"] == "OK"
    assert len({trace["trace_id"] for trace in traces}) == 1, json.dumps(traces)
