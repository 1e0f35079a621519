"""devstack.node.images: the commands that build and save the node's images, and the Dockerfiles."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest
from devstack.node import images
from devstack.venvs import repo_root

ROOT = repo_root()


class RecordingRunner:
    """Stands in for subprocess: records each command, answers `docker image inspect` sizes."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.calls: list[tuple[list[str], dict[str, str]]] = []
        self.fail_on = fail_on

    def __call__(self, argv: Sequence[str], cwd: Path, env: Mapping[str, str]) -> str:
        self.calls.append((list(argv), dict(env)))
        if self.fail_on is not None and self.fail_on in argv:
            raise images.ImageBuildError(f"{self.fail_on} failed")
        if argv[:3] == ["docker", "image", "inspect"]:
            return "123000000\n"
        return ""

    def builds(self) -> list[list[str]]:
        return [argv for argv, _ in self.calls if argv[:2] == ["docker", "build"]]


def _ticking_clock() -> Callable[[], float]:
    ticks = iter(range(0, 1000, 5))
    return lambda: float(next(ticks))


def test_build_all_starts_the_engine_and_the_base_before_building_every_image(
    capsys: pytest.CaptureFixture[str],
) -> None:
    runner = RecordingRunner()
    tags = images.build_all("my-base:1", root=ROOT, run=runner, clock=_ticking_clock())
    assert tags == list(images.IMAGES)
    (engine, _), (base, base_env) = runner.calls[:2]
    assert engine == ["scripts/docker/ensure-engine.sh"]
    assert base == ["scripts/docker/build-offline-base.sh"]
    assert base_env == {"BASE_TAG": "my-base:1"}
    builds = runner.builds()
    assert [argv[argv.index("-t") + 1] for argv in builds] == list(images.IMAGES)
    assert all("BASE_IMAGE=my-base:1" in argv for argv in builds)
    # One progress line per image, with its build time and size.
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"[images] {tag}: built in 5.0s, 123 MB" for tag in images.IMAGES]


def test_only_the_gateway_build_gets_the_package_version() -> None:
    runner = RecordingRunner()
    images.build_all(root=ROOT, run=runner, clock=_ticking_clock())
    gateway, *others = runner.builds()
    assert f"VERSION={images.package_version(ROOT)}" in gateway
    assert len(others) == len(images.BUILDS) - 1
    assert not any(arg.startswith("VERSION=") for build in others for arg in build)


def test_a_failed_build_stops_the_rest() -> None:
    runner = RecordingRunner(fail_on="llm-gateway-litellm:dev")
    with pytest.raises(images.ImageBuildError, match="litellm"):
        images.build_all(root=ROOT, run=runner, clock=_ticking_clock())
    assert len(runner.builds()) == 2  # the gateway, then the failing one; never mlflow


def test_run_command_failure_carries_the_output_tail(tmp_path: Path) -> None:
    with pytest.raises(images.ImageBuildError, match="exited with 3:\nboom"):
        images.run_command(["sh", "-c", "echo boom; exit 3"], tmp_path, {})


def test_export_saves_all_tags_into_one_archive(tmp_path: Path) -> None:
    archive = tmp_path / "out" / "images.tar"

    def fake_save(argv: Sequence[str], cwd: Path, env: Mapping[str, str]) -> str:
        assert list(argv) == ["docker", "save", "-o", str(archive), *images.IMAGES]
        Path(argv[3]).write_bytes(b"tar")
        return ""

    assert images.export_to(images.IMAGES, archive, root=ROOT, run=fake_save) == archive
    assert archive.read_bytes() == b"tar"


def test_export_refuses_an_empty_tag_list(tmp_path: Path) -> None:
    with pytest.raises(images.ImageBuildError, match="no image tags"):
        images.export_to([], tmp_path / "x.tar", root=ROOT, run=RecordingRunner())


# Each Dockerfile's default base: the standard one for real users (the offline base is passed
# as a build arg). Python images on python's slim image; PostgreSQL on Debian's (it needs no
# Python).
DEFAULT_BASES = {"llm-gateway-postgres:dev": "debian:bookworm-slim"}


@pytest.mark.parametrize("build", images.BUILDS, ids=lambda b: b.tag)
def test_every_dockerfile_copies_only_what_its_context_holds(build: images.ImageBuild) -> None:
    text = (ROOT / build.dockerfile).read_text()
    assert f"ARG BASE_IMAGE={DEFAULT_BASES.get(build.tag, 'python:3.12-slim')}" in text
    for source in re.findall(r"^COPY (?!--from)(\S+)", text, flags=re.MULTILINE):
        assert (ROOT / build.context / source).exists(), source


@pytest.mark.parametrize(
    ("build", "requirements"),
    [
        pytest.param(images.BUILDS[1], "litellm.txt", id="litellm"),
        pytest.param(images.BUILDS[2], "mlflow.txt", id="mlflow"),
    ],
)
def test_side_images_install_the_local_stacks_pins_as_a_fixed_non_root_user(
    build: images.ImageBuild, requirements: str
) -> None:
    text = (ROOT / build.dockerfile).read_text()
    # The very file `make run` builds its venv from (devstack/litellm.py, devstack/mlflow.py).
    assert build.context / requirements == Path("devstack/requirements") / requirements
    assert f"COPY {requirements} " in text
    assert re.search(r"^USER 10001:10001$", text, flags=re.MULTILINE)
    # Build tools stay in the builder stage: the runtime copies only the venv.
    runtime = text.split("AS runtime", 1)[1]
    assert re.findall(r"^COPY .*", runtime, flags=re.MULTILINE) == [
        "COPY --from=builder /opt/venv /opt/venv"
    ]
    assert "pip install" not in runtime and "uv" not in runtime.split()


def test_litellm_image_never_fetches_the_cost_map() -> None:
    text = (ROOT / "k8s/images/litellm/Dockerfile").read_text()
    assert "LITELLM_LOCAL_MODEL_COST_MAP=True" in text
    # The chart's args follow the entrypoint, as with upstream's `litellm "$@"`.
    assert 'ENTRYPOINT ["litellm"]' in text


def test_postgres_image_honours_the_official_images_contract_as_a_fixed_non_root_user() -> None:
    (build,) = [b for b in images.BUILDS if b.tag == "llm-gateway-postgres:dev"]
    text = (ROOT / build.dockerfile).read_text()
    entrypoint = (ROOT / build.context / "docker-entrypoint.sh").read_text()
    # Debian's package, not a copy of someone's image; its major is the chart's default tag's.
    assert re.search(r"apt-get install .*\bpostgresql;", text)
    assert "ENV PG_MAJOR=15" in text
    # uid/gid 999 as in the official Debian-based image; the chart's security context names it.
    assert re.search(r"^USER 999:999$", text, flags=re.MULTILINE)
    assert 'ENTRYPOINT ["docker-entrypoint.sh"]' in text and 'CMD ["postgres"]' in text
    for variable in ("POSTGRES_PASSWORD", "POSTGRES_USER", "POSTGRES_DB", "PGDATA"):
        assert variable in entrypoint, variable
    # Clients in other pods must give the password; none is trusted by address.
    assert "host all all all scram-sha-256" in entrypoint
    assert "--auth-host=scram-sha-256" in entrypoint
