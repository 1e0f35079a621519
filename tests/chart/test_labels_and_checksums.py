"""Selectors stay put across chart versions; pod templates roll exactly when config changes."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.rendering import CHART, KIND_VALUES, Manifests, render

pytestmark = pytest.mark.chart


def _selectors(manifests: Manifests) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    for doc in manifests.documents:
        spec: dict[str, Any] = doc.get("spec") or {}
        key = f"{doc['kind']}/{doc['metadata']['name']}"
        if doc["kind"] in ("Deployment", "StatefulSet", "PodDisruptionBudget"):
            found[key] = spec["selector"]["matchLabels"]
        elif doc["kind"] == "Service":
            found[key] = spec["selector"]
    return found


@pytest.fixture(scope="module")
def bumped_chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the chart whose version and appVersion moved on."""
    copy = tmp_path_factory.mktemp("bumped") / "llm-gateway"
    shutil.copytree(CHART, copy)
    chart_yaml = copy / "Chart.yaml"
    chart = yaml.safe_load(chart_yaml.read_text())
    chart["version"] = "9.8.7"
    chart["appVersion"] = "9.8.7"
    chart_yaml.write_text(yaml.safe_dump(chart))
    return copy


def test_selector_labels_never_carry_the_chart_version() -> None:
    manifests = render(KIND_VALUES)
    chart_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["version"]
    selectors = _selectors(manifests)
    assert len(selectors) >= 8
    for name, labels in selectors.items():
        assert "helm.sh/chart" not in labels, name
        assert "app.kubernetes.io/version" not in labels, name
        assert not any(chart_version in value for value in labels.values()), name


def test_selectors_are_identical_across_chart_versions(bumped_chart: Path) -> None:
    current = render(KIND_VALUES)
    bumped = render(KIND_VALUES, chart=bumped_chart)
    # The bump is visible in the ordinary labels, so the comparison below is not vacuous.
    assert bumped.gateway()["metadata"]["labels"]["helm.sh/chart"] == "llm-gateway-9.8.7"
    assert current.gateway()["metadata"]["labels"]["helm.sh/chart"] != "llm-gateway-9.8.7"
    assert _selectors(bumped) == _selectors(current)


def test_pod_template_labels_match_the_selector() -> None:
    manifests = render(KIND_VALUES)
    for kind in ("Deployment", "StatefulSet"):
        for workload in manifests.of_kind(kind):
            selector = workload["spec"]["selector"]["matchLabels"]
            labels = workload["spec"]["template"]["metadata"]["labels"]
            assert selector.items() <= labels.items(), workload["metadata"]["name"]


def _annotations(manifests: Manifests) -> dict[str, str]:
    return dict(manifests.gateway()["spec"]["template"]["metadata"]["annotations"])


def test_checksums_are_stable_for_the_same_values() -> None:
    first = _annotations(render(KIND_VALUES))
    again = _annotations(render(KIND_VALUES, sets=("config.logLevel=INFO",)))
    assert first == again


@pytest.mark.parametrize(
    ("sets", "changes"),
    [
        pytest.param(("config.logLevel=DEBUG",), {"checksum/config"}, id="config-value"),
        pytest.param(("drain.gunicornTimeout=90",), {"checksum/config"}, id="drain-value"),
        pytest.param(
            ("secrets.jwtSecretKey=another-signing-key-0123456789abcdef-0123",),
            {"checksum/secret"},
            id="secret-value",
        ),
    ],
)
def test_checksum_changes_when_its_source_changes(sets: tuple[str, ...], changes: set[str]) -> None:
    before = _annotations(render(KIND_VALUES))
    after = _annotations(render(KIND_VALUES, sets=sets))
    changed = {key for key in before if key.startswith("checksum/") and before[key] != after[key]}
    assert changed == changes


def test_litellm_pods_roll_when_its_config_changes() -> None:
    def checksum(manifests: Manifests) -> str:
        deployment = manifests.get("Deployment", "demo-litellm")
        return str(deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"])

    shipped = render(KIND_VALUES)
    replaced = render(KIND_VALUES, sets=("litellm.config=model_list: []",))
    assert checksum(shipped) != checksum(replaced)
