"""Side virtualenvs for the stack's other programs (LiteLLM proxy, MLflow server).

Each program lives in its own venv under `.stack/`, never in the service's `.venv`: their
dependency trees conflict with the service's pins and with each other (importing litellm inside
`mlflow server` deadlocks). A venv is built from one fully pinned requirements file and stamped
with that file's sha256, so it is rebuilt only when the pins change. Builds are serialised with a
file lock because parallel test sessions and `make run` may ask for the same venv at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

STAMP_NAME = ".requirements-sha256"
STACK_DIR = ".stack"
# Outside markers that would point the installer at another environment (the Makefile exports
# UV_PROJECT_ENVIRONMENT for the service's venv; an activated venv sets VIRTUAL_ENV).
_FOREIGN_ENV = ("VIRTUAL_ENV", "PYTHONPATH", "UV_PROJECT_ENVIRONMENT", "PYTHONHOME")


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def find_uv(root: Path) -> str | None:
    """The project's pinned uv (`make` puts it in .tools), else one on PATH, else None."""
    local = root / ".tools" / "uv" / "bin" / "uv"
    if local.is_file():
        return str(local)
    return shutil.which("uv")


def requirements_hash(requirements: Path) -> str:
    return hashlib.sha256(requirements.read_bytes()).hexdigest()


def clean_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of the environment without variables that redirect Python or the installer."""
    source = os.environ if base is None else base
    return {k: v for k, v in source.items() if k not in _FOREIGN_ENV}


@contextlib.contextmanager
def exclusive(lock_path: Path) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(argv: Sequence[str], env: Mapping[str, str]) -> None:
    subprocess.run(list(argv), check=True, env=dict(env))  # noqa: S603 - fixed argv, no shell


def venv_is_current(venv: Path, requirements: Path, entry_point: str) -> bool:
    stamp = venv / STAMP_NAME
    return (
        stamp.is_file()
        and stamp.read_text().strip() == requirements_hash(requirements)
        and (venv / "bin" / entry_point).is_file()
    )


def ensure_venv(
    root: Path,
    name: str,
    requirements: Path,
    *,
    entry_point: str,
    python: str | None = None,
) -> Path:
    """`root/.stack/<name>` holding exactly `requirements`; built only when missing or stale.

    `entry_point` is a file in the venv's bin/ whose presence proves the install finished (a
    half-built venv from an interrupted run has no stamp and is rebuilt). Returns the venv
    directory; raises `subprocess.CalledProcessError` when the install fails.
    """
    venv = root / STACK_DIR / name
    with exclusive(root / STACK_DIR / f"{name}.lock"):
        if venv_is_current(venv, requirements, entry_point):
            return venv
        wanted = requirements_hash(requirements)
        env = clean_env()
        # Same interpreter as the caller (3.11 here): uv must never try to download a Python.
        interpreter = python or str(getattr(sys, "_base_executable", sys.executable))
        uv = find_uv(root)
        if venv.exists():
            shutil.rmtree(venv)
        if uv is not None:
            _run([uv, "venv", "--quiet", "--python", interpreter, str(venv)], env)
            # Byte-compiled at install (uv does not by default): otherwise the first start of
            # the LiteLLM proxy also compiles the ~1500 modules it imports, roughly doubling it.
            pip_sync = [
                uv,
                "pip",
                "sync",
                "--quiet",
                "--compile-bytecode",
                "--python",
                str(venv / "bin" / "python"),
            ]
            _run([*pip_sync, str(requirements)], env)
        else:
            _run([interpreter, "-m", "venv", str(venv)], env)
            pip = [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check"]
            _run([*pip, "-r", str(requirements)], env)
        (venv / STAMP_NAME).write_text(wanted + "\n")
        return venv
