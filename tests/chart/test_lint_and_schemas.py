"""The chart lints strictly and every rendered object is valid Kubernetes, oldest to newest."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import schema_contents
from referencing import Registry, Resource

from tests.chart.rendering import (
    CHART,
    DEFAULT_SETS,
    KIND_VALUES,
    NODE_VALUES,
    PRODUCTION_VALUES,
    render,
    run_helm,
)

pytestmark = pytest.mark.chart

VALUE_SETS = [
    pytest.param((), id="default-values"),
    pytest.param((KIND_VALUES,), id="kind-values"),
    pytest.param((PRODUCTION_VALUES,), id="production-values"),
    pytest.param((NODE_VALUES,), id="node-values"),
]
# Objects of CRDs kubernetes-validate has no schema for; their shape is asserted elsewhere.
CUSTOM_RESOURCES = {("monitoring.coreos.com/v1", "ServiceMonitor")}


def _min_kube_version() -> str:
    declared = yaml.safe_load((CHART / "Chart.yaml").read_text())["kubeVersion"]
    return declared.removeprefix(">=").removesuffix("-0")


def _bundled_versions() -> list[str]:
    schemas = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    versions = {
        entry.name.removeprefix("v").removesuffix("-local-strict")
        for entry in schemas.iterdir()
        if entry.name.endswith("-local-strict")
    }
    return sorted(versions, key=lambda v: tuple(int(part) for part in v.split(".")))


def _oldest_supported() -> str:
    floor = tuple(int(part) for part in _min_kube_version().split("."))
    return next(
        v for v in _bundled_versions() if tuple(int(part) for part in v.split(".")) >= floor
    )


OLDEST = _oldest_supported()
NEWEST = _bundled_versions()[-1]


def test_the_oldest_validated_version_is_the_charts_declared_minimum() -> None:
    assert _min_kube_version() == OLDEST, (
        f"kubernetes-validate has no schema for the chart's minimum {_min_kube_version()}"
    )


@pytest.mark.parametrize("values", VALUE_SETS)
def test_helm_lint_strict_passes(values: tuple[Path, ...]) -> None:
    args = ["lint", "--strict", "."]
    for path in values:
        args += ["-f", str(path)]
    for item in DEFAULT_SETS:
        args += ["--set", item]
    result = run_helm(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@cache
def _strict_validator(version: str, api_version: str, kind: str) -> jsonschema.Validator:
    """kubernetes-validate's own strict schema and validator class, built once per kind.

    `kubernetes_validate.validate` re-reads the multi-megabyte definitions file on every call
    (~0.1 s a document); the result is identical (asserted below), only cached.
    """
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    folder = f"kubernetes-json-schema/v{version}-local-strict"
    schema = schema_contents(f"{folder}/{kind.lower()}-{group_version}.json", version)
    definitions = schema_contents(f"{folder}/_definitions.json", version)
    registry = Resource.from_contents(definitions) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


@pytest.mark.parametrize(
    "subchart", ["litellm", "qdrant", "mlflow", "redis", "mlflow/charts/postgresql"]
)
def test_each_subchart_lints_strictly_on_its_own(subchart: str) -> None:
    result = run_helm("lint", "--strict", f"charts/{subchart}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


def _validate_all(documents: tuple[dict[str, Any], ...], version: str) -> list[str]:
    problems = []
    for doc in documents:
        if (doc["apiVersion"], doc["kind"]) in CUSTOM_RESOURCES:
            continue
        validator = _strict_validator(version, doc["apiVersion"], doc["kind"])
        for error in validator.iter_errors(doc):
            problems.append(f"{doc['kind']}/{doc['metadata']['name']}: {error.message}")
    return problems


@pytest.mark.parametrize(
    "version", [pytest.param(OLDEST, id="oldest"), pytest.param(NEWEST, id="newest")]
)
def test_cached_validation_agrees_with_kubernetes_validate(version: str) -> None:
    good = render(kube_version=version).gateway()
    kubernetes_validate.validate(good, version, strict=True)
    assert _validate_all((good,), version) == []
    bad = {**good, "spec": {**good["spec"], "replicass": 2}}
    with pytest.raises(kubernetes_validate.ValidationError, match="replicass"):
        kubernetes_validate.validate(bad, version, strict=True)
    assert any("replicass" in problem for problem in _validate_all((bad,), version))


@pytest.mark.parametrize("values", VALUE_SETS)
@pytest.mark.parametrize(
    "version", [pytest.param(OLDEST, id="oldest"), pytest.param(NEWEST, id="newest")]
)
def test_every_rendered_object_validates_strictly(values: tuple[Path, ...], version: str) -> None:
    manifests = render(*values, kube_version=version)
    assert len(manifests.documents) >= 8
    assert _validate_all(manifests.documents, version) == []


@pytest.mark.parametrize(
    "version", [pytest.param(OLDEST, id="oldest"), pytest.param(NEWEST, id="newest")]
)
def test_the_optional_redis_validates_strictly(version: str) -> None:
    # Off in every values file above: rendered here with a password, so its Secret, the
    # $(REDIS_PASSWORD) argument and the gateway's secretKeyRef are validated too.
    manifests = render(
        KIND_VALUES, sets=("redis.enabled=true", "redis.password=pw"), kube_version=version
    )
    assert {d["kind"] for d in manifests.documents if d["metadata"]["name"].endswith("-redis")} == {
        "Deployment",
        "Service",
        "Secret",
    }
    assert _validate_all(manifests.documents, version) == []


@pytest.mark.parametrize(
    "version", [pytest.param(OLDEST, id="oldest"), pytest.param(NEWEST, id="newest")]
)
def test_the_optional_postgresql_validates_strictly(version: str) -> None:
    # On in the node values but without a claim: rendered here with one (volumeClaimTemplates,
    # fsGroupChangePolicy, exec probes, preStop) and MLflow's store-init container.
    manifests = render(
        KIND_VALUES,
        sets=("mlflow.postgresql.enabled=true", "mlflow.replicaCount=2"),
        kube_version=version,
    )
    postgres = [d for d in manifests.documents if d["metadata"]["name"].startswith("demo-postgres")]
    assert {d["kind"] for d in postgres} == {"StatefulSet", "Service", "Secret"}
    assert _validate_all(manifests.documents, version) == []


def test_the_validator_catches_a_field_unknown_to_the_version() -> None:
    # The native preStop sleep action does not exist in the oldest supported version: forcing it
    # must be caught, which shows the validation above is strict enough to matter.
    manifests = render(sets=("drain.preStopMode=sleep",), kube_version=NEWEST)
    problems = _validate_all(manifests.documents, OLDEST)
    assert any("sleep" in problem for problem in problems), problems


def test_production_values_render_a_service_monitor_scraping_metrics() -> None:
    manifests = render(PRODUCTION_VALUES)
    (monitor,) = manifests.of_kind("ServiceMonitor")
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "http"
    assert endpoint["path"] == "/metrics"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
