"""NOTES.txt tells exactly how to reach this release: the right Service, paths the app serves."""

from __future__ import annotations

import pytest

from tests.chart.rendering import DEFAULT_SETS, KIND_VALUES, run_helm

pytestmark = pytest.mark.chart


def _notes(*args: str) -> str:
    sets = [part for item in DEFAULT_SETS for part in ("--set", item)]
    result = run_helm("install", "demo", ".", "-n", "llm", "--dry-run=client", *sets, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout.split("NOTES:", 1)[1]


def test_notes_port_forward_and_curl_the_release() -> None:
    notes = _notes("-f", str(KIND_VALUES))
    assert "kubectl -n llm port-forward service/demo-llm-gateway 8000:8000" in notes
    for path in ("/livez", "/readyz", "/auth/login", "/llm/generate", "/models"):
        assert f"http://localhost:8000{path}" in notes, path
    assert '"model": "smart-router"' in notes
    assert "service/demo-mlflow 5000:5000" in notes
    assert "helm test demo -n llm" in notes


def test_notes_leave_out_disabled_subcharts() -> None:
    notes = _notes(
        "--set",
        "mlflow.enabled=false",
        "--set",
        "qdrant.enabled=false",
    )
    assert "demo-mlflow" not in notes
    assert "demo-qdrant" not in notes
    assert "service/demo-litellm" in notes
