"""skaffold.yaml deploys this chart the way `make deploy` does and forwards real Services.

No skaffold binary runs here; these checks tie its file to the chart it drives.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from tests.chart.rendering import CHART, ROOT, render

pytestmark = pytest.mark.chart


@pytest.fixture(scope="module")
def skaffold() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "skaffold.yaml").read_text()))


def _release(skaffold: dict[str, Any]) -> dict[str, Any]:
    (release,) = skaffold["deploy"]["helm"]["releases"]
    return dict(release)


def test_builds_the_projects_dockerfile_as_the_chart_image(skaffold: dict[str, Any]) -> None:
    assert skaffold["apiVersion"].startswith("skaffold/v4beta")
    (artifact,) = skaffold["build"]["artifacts"]
    assert (ROOT / artifact["context"] / artifact["docker"]["dockerfile"]).name == "Dockerfile"
    templates = _release(skaffold)["setValueTemplates"]
    name = artifact["image"].replace("-", "_")
    assert templates == {
        "image.repository": f"{{{{.IMAGE_REPO_{name}}}}}",
        "image.tag": f"{{{{.IMAGE_TAG_{name}}}}}",
    }


def test_deploys_this_chart_with_the_kind_values(skaffold: dict[str, Any]) -> None:
    release = _release(skaffold)
    assert (ROOT / release["chartPath"]).resolve() == CHART
    assert release["valuesFiles"] == ["k8s/values-kind.yaml"]
    # The keys skaffold sets exist in the chart's strict schema.
    schema = json.loads((CHART / "values.schema.json").read_text())
    for key in [*release["setValueTemplates"], *release["setValues"]]:
        node = schema
        for part in key.split("."):
            node = node["properties"][part]


@pytest.mark.parametrize("profile", [None, "minimal"])
def test_port_forwards_name_services_the_release_renders(
    skaffold: dict[str, Any], profile: str | None
) -> None:
    release = _release(skaffold)
    forwards = skaffold["portForward"]
    sets: tuple[str, ...] = ()
    if profile is not None:
        patches = next(p for p in skaffold["profiles"] if p["name"] == profile)["patches"]
        for patch in patches:
            if patch["path"] == "/portForward":
                forwards = patch["value"]
            elif patch["path"].startswith("/deploy/helm/releases/0/setValues/"):
                key = patch["path"].rsplit("/", 1)[1]
                sets += (f"{key}={str(patch['value']).lower()}",)
    manifests = render(
        ROOT / release["valuesFiles"][0],
        sets=sets,
        release=release["name"],
        namespace=release["namespace"],
    )
    assert any(f["localPort"] == 8000 for f in forwards)
    for forward in forwards:
        service = manifests.get("Service", forward["resourceName"])
        assert forward["port"] in [p["port"] for p in service["spec"]["ports"]]
