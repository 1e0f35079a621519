"""The chart's images for our single real node, built here because no registry can be reached.

Four images, all on the same offline Debian base (scripts/docker/build-offline-base.sh), the
Python ones with their packages from PyPI, PostgreSQL from Debian's package:

  llm-gateway:dev           the gateway, from the project's Dockerfile (as `make image-offline`)
  llm-gateway-litellm:dev   the LiteLLM proxy, k8s/images/litellm/Dockerfile
  llm-gateway-mlflow:dev    the MLflow server, k8s/images/mlflow/Dockerfile
  llm-gateway-postgres:dev  MLflow's PostgreSQL, k8s/images/postgres/Dockerfile

k8s/values-node.yaml points the chart at exactly these tags with pullPolicy Never. `save` writes
them into one archive for `ctr -n k8s.io images import`.

CLI::

    python -m devstack.node.images build [--base-image llm-gateway-base:bookworm]
    python -m devstack.node.images save PATH [TAG ...]
    python -m devstack.node.images check     # run LiteLLM, MLflow, PostgreSQL as the node does
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from devstack.node import image_check
from devstack.venvs import repo_root

DEFAULT_BASE_IMAGE = "llm-gateway-base:bookworm"
# Lines of a failed command's output kept in the error (docker build's output is long).
_FAILURE_TAIL_LINES = 40


@dataclass(frozen=True)
class ImageBuild:
    """One image: its tag, its Dockerfile and its build context (both relative to the repo)."""

    tag: str
    dockerfile: Path
    context: Path
    # The gateway's Dockerfile labels the image with the package version; the others take none
    # (docker warns about build args a Dockerfile does not declare).
    takes_version: bool = False


BUILDS: tuple[ImageBuild, ...] = (
    ImageBuild("llm-gateway:dev", Path("Dockerfile"), Path("."), takes_version=True),
    # The pins are the whole context: nothing else in the repository invalidates their cache.
    ImageBuild(
        "llm-gateway-litellm:dev",
        Path("k8s/images/litellm/Dockerfile"),
        Path("devstack/requirements"),
    ),
    ImageBuild(
        "llm-gateway-mlflow:dev",
        Path("k8s/images/mlflow/Dockerfile"),
        Path("devstack/requirements"),
    ),
    # Debian's postgresql package and the entrypoint beside the Dockerfile: nothing from PyPI.
    ImageBuild(
        "llm-gateway-postgres:dev",
        Path("k8s/images/postgres/Dockerfile"),
        Path("k8s/images/postgres"),
    ),
)
IMAGES: tuple[str, ...] = tuple(build.tag for build in BUILDS)


class ImageBuildError(RuntimeError):
    """A script or docker command failed; the message ends with the tail of its output."""


# Runs argv (cwd = the repository, env added to os.environ); returns its combined output or
# raises ImageBuildError. Injected so tests see the commands without a Docker engine.
Runner = Callable[[Sequence[str], Path, Mapping[str, str]], str]


def run_command(argv: Sequence[str], cwd: Path, env: Mapping[str, str]) -> str:
    result = subprocess.run(  # noqa: S603 - fixed argv, no shell
        list(argv),
        cwd=cwd,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        tail = "\n".join(result.stdout.splitlines()[-_FAILURE_TAIL_LINES:])
        raise ImageBuildError(f"{' '.join(argv)} exited with {result.returncode}:\n{tail}")
    return result.stdout


def say(message: str) -> None:
    sys.stdout.write(f"[images] {message}\n")
    sys.stdout.flush()


def package_version(root: Path) -> str:
    with (root / "pyproject.toml").open("rb") as handle:
        return str(tomllib.load(handle)["project"]["version"])


def build_command(build: ImageBuild, base_image: str, version: str) -> list[str]:
    argv = ["docker", "build", "-f", str(build.dockerfile), "-t", build.tag]
    argv += ["--build-arg", f"BASE_IMAGE={base_image}"]
    if build.takes_version:
        argv += ["--build-arg", f"VERSION={version}"]
    return [*argv, str(build.context)]


def image_size_mb(tag: str, run: Runner, root: Path) -> float:
    size = run(["docker", "image", "inspect", tag, "--format", "{{.Size}}"], root, {})
    return int(size.strip()) / 1e6


def build_all(
    base_image: str = DEFAULT_BASE_IMAGE,
    *,
    root: Path | None = None,
    run: Runner = run_command,
    clock: Callable[[], float] = time.monotonic,
) -> list[str]:
    """Build every image in BUILDS on `base_image`; returns their tags.

    Starts the Docker engine and builds the offline base first when they are missing (both
    scripts are no-ops otherwise). Docker's layer cache makes a rebuild with unchanged inputs take
    seconds. Raises ImageBuildError when any step fails.
    """
    root = root or repo_root()
    run(["scripts/docker/ensure-engine.sh"], root, {})
    run(["scripts/docker/build-offline-base.sh"], root, {"BASE_TAG": base_image})
    version = package_version(root)
    tags = []
    for build in BUILDS:
        started = clock()
        run(build_command(build, base_image, version), root, {})
        seconds = clock() - started
        size = image_size_mb(build.tag, run, root)
        say(f"{build.tag}: built in {seconds:.1f}s, {size:.0f} MB")
        tags.append(build.tag)
    return tags


def export_to(
    tags: Sequence[str], archive: Path, *, root: Path | None = None, run: Runner = run_command
) -> Path:
    """`docker save` the tags into one tar archive (for `ctr -n k8s.io images import`)."""
    if not tags:
        raise ImageBuildError("no image tags to save")
    archive = archive.resolve()
    archive.parent.mkdir(parents=True, exist_ok=True)
    run(["docker", "save", "-o", str(archive), *tags], root or repo_root(), {})
    say(f"saved {', '.join(tags)} to {archive} ({archive.stat().st_size / 1e6:.0f} MB)")
    return archive


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.node.images", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser(
        "build", help="build the gateway, LiteLLM, MLflow and PostgreSQL images"
    )
    build.add_argument("--base-image", default=DEFAULT_BASE_IMAGE)
    save = commands.add_parser("save", help="docker save images into one tar archive")
    save.add_argument("archive", type=Path)
    save.add_argument("tags", nargs="*", default=list(IMAGES), help="default: all of them")
    commands.add_parser(
        "check",
        help="start the LiteLLM, MLflow and PostgreSQL images as k8s/values-node.yaml runs them",
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            build_all(args.base_image)
        elif args.command == "save":
            export_to(args.tags, args.archive)
        else:
            image_check.check_all(repo_root(), say)
    except (ImageBuildError, image_check.CheckFailed) as error:
        say(f"error: {error}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
