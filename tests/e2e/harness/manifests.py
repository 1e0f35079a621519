"""Where the gateway's pod spec comes from: the rendered chart, or the fixture until it exists.

The chart (chart/llm-gateway, rendered with the kind values) is the source of truth; the
hand-written fixture only stands in while the chart is being written, and `source` says which one
a run used so nobody mistakes one for the other.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.e2e.harness.pod import load_manifests

REPO_ROOT = Path(__file__).resolve().parents[3]
CHART_DIR = REPO_ROOT / "chart" / "llm-gateway"
KIND_VALUES = REPO_ROOT / "k8s" / "values-kind.yaml"
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "gateway-manifests.yaml"
RELEASE = "gw"
# The gateway's Deployment and container among the release's workloads (LiteLLM, MLflow, ...).
GATEWAY_DEPLOYMENT = f"{RELEASE}-llm-gateway"
GATEWAY_CONTAINER = "gateway"


@dataclass(frozen=True)
class RenderedManifests:
    documents: list[dict[str, Any]]
    source: str  # "chart: <dir> -f <values>" or "fixture: <path>"


def helm_binary() -> str | None:
    local = REPO_ROOT / ".tools" / "bin" / "helm"
    return str(local) if local.exists() else shutil.which("helm")


def render_chart(
    chart_dir: Path = CHART_DIR,
    values_files: tuple[Path, ...] = (),
    set_values: dict[str, str] | None = None,
    release: str = RELEASE,
) -> RenderedManifests:
    helm = helm_binary()
    if helm is None:
        raise RuntimeError("helm is missing: run `make tools`")
    argv = [helm, "template", release, str(chart_dir)]
    for values in values_files:
        argv += ["-f", str(values)]
    for key, value in (set_values or {}).items():
        argv += ["--set-string", f"{key}={value}"]
    result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"helm template failed:\n{result.stderr}")
    values_note = " ".join(f"-f {v.relative_to(REPO_ROOT)}" for v in values_files)
    return RenderedManifests(
        load_manifests(result.stdout), f"chart: {chart_dir.name} {values_note}"
    )


def fixture_manifests(path: Path = FIXTURE) -> RenderedManifests:
    return RenderedManifests(load_manifests(path.read_text()), f"fixture: {path.name}")


def gateway_manifests(set_values: dict[str, str] | None = None) -> RenderedManifests:
    """The chart with the kind values when chart and helm are present; the fixture otherwise.

    E2E_POD_SOURCE=chart makes a missing chart an error (CI, once the chart has landed);
    E2E_POD_SOURCE=fixture forces the fixture.
    """
    wanted = os.environ.get("E2E_POD_SOURCE", "auto")
    chart_ready = (CHART_DIR / "Chart.yaml").exists() and helm_binary() is not None
    if wanted == "fixture" or (wanted == "auto" and not chart_ready):
        return fixture_manifests()
    values = (KIND_VALUES,) if KIND_VALUES.exists() else ()
    return render_chart(values_files=values, set_values=set_values)
