"""Start the gateway the way production does: gunicorn master + uvicorn workers, real signals."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx
import orjson

from llm_gateway.auth.passwords import hash_password
from tests.support.processes import ManagedProcess, free_port, wait_http
from tests.support.settings import base_env

REPO_ROOT = Path(__file__).resolve().parents[2]
# Logged once by each uvicorn worker when its lifespan startup has finished.
WORKER_STARTED = "Application startup complete."


class GatewayProcess(ManagedProcess):
    def __init__(self, port: int, log_path: Path, env: Mapping[str, str], argv: list[str]) -> None:
        super().__init__(argv, log_path=log_path, env=env, cwd=REPO_ROOT)
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"


def start_gateway(
    tmp_path: Path,
    *,
    app: str = "tests.support.gunicorn_app:create()",
    workers: int = 2,
    ready_timeout: float = 60.0,
    **settings: str | None,
) -> GatewayProcess:
    """gunicorn with our conf; `app` may name a test factory that adds routes to the real app.

    A setting passed as None is removed from the environment (e.g. to exercise development
    defaults).
    """
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        **base_env(**{k: v for k, v in settings.items() if v is not None}),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WEB_CONCURRENCY": str(workers),
        "DATA_DIR": str(tmp_path / "data"),
        "PYTHONPATH": str(REPO_ROOT),
    }
    for key, value in settings.items():
        if value is None:
            env.pop(key.upper(), None)
        else:
            env[key.upper()] = value
    argv = [sys.executable, "-m", "gunicorn", "-c", "python:llm_gateway.gunicorn_conf", app]
    process = GatewayProcess(port, tmp_path / "gateway.log", env, argv)
    deadline = time.monotonic() + ready_timeout
    try:
        wait_http(f"{process.base_url}/livez", timeout=ready_timeout)
        # /livez answers as soon as one worker is up; a test about several workers (drain,
        # a cache shared between them) needs every one of them serving.
        while process.output().count(WORKER_STARTED) < workers:
            if time.monotonic() > deadline or process.proc.poll() is not None:
                raise TimeoutError
            time.sleep(0.1)
    except TimeoutError:
        process.stop()
        raise AssertionError(f"gateway did not start:\n{process.output()[-4000:]}") from None
    return process


ADMIN_LOGIN = {"username": "root", "password": "root-pw"}


@contextmanager
def admin_gateway(
    tmp_path: Path, *, workers: int = 2, **settings: str | None
) -> Iterator[GatewayProcess]:
    """The real app under gunicorn with one admin (ADMIN_LOGIN), stopped on exit."""
    users = [
        {
            "username": ADMIN_LOGIN["username"],
            "password_hash": hash_password(ADMIN_LOGIN["password"]),
            "role": "admin",
        }
    ]
    process = start_gateway(
        tmp_path,
        app="llm_gateway.app:create_app()",
        workers=workers,
        USERS_JSON=orjson.dumps(users).decode(),
        **settings,
    )
    try:
        yield process
    finally:
        process.stop()


def admin_headers(gateway: GatewayProcess) -> dict[str, str]:
    """An Authorization header for ADMIN_LOGIN on `gateway`."""
    login = httpx.post(f"{gateway.base_url}/auth/login", json=ADMIN_LOGIN)
    login.raise_for_status()
    return {"Authorization": f"Bearer {login.json()['access_token']}"}
