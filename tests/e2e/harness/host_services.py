"""The pod's shared dependencies as host processes the containers reach: LiteLLM (in front of the
controllable fake upstream) and an MLflow tracking server.

Containers reach the host as `host.docker.internal` (PodContainer adds it), so these bind
0.0.0.0, and MLflow must also accept that name in its allowed-hosts check (MLflow >= 3.5 answers
403 to an unknown Host header). Each can be stopped and started again on the same port, which is
what an outage of a Service's backends looks like from the pod: connection refused, then back.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from devstack.litellm import READY_PATH, spawn_litellm_proxy
from devstack.litellm_config import DEFAULT_MODELS, fake_upstream_config, write_config
from devstack.mlflow import DEFAULT_ALLOWED_HOSTS, MlflowServer, start_mlflow_server
from devstack.processes import ServiceProcess

from tests.support.fake_upstream import FakeUpstreamProcess, start_fake_upstream
from tests.support.litellm_proxy import litellm_venv, new_master_key
from tests.support.mlflow_server import START_TIMEOUT, mlflow_venv
from tests.support.processes import free_port

CONTAINER_HOST = "host.docker.internal"
ANY_ADDRESS = "0.0.0.0"  # reachable from the docker bridge: the whole point
MLFLOW_ALLOWED_HOSTS = ",".join(
    (DEFAULT_ALLOWED_HOSTS, CONTAINER_HOST, f"{CONTAINER_HOST}:*", ANY_ADDRESS, f"{ANY_ADDRESS}:*")
)
LITELLM_READY_TIMEOUT = 300.0


@dataclass
class HostLiteLLM:
    """A LiteLLM proxy on a fixed port (kept across restarts) routing to a fake upstream."""

    workdir: Path
    upstream: FakeUpstreamProcess
    models: tuple[str, ...] = DEFAULT_MODELS
    master_key: str = field(default_factory=new_master_key)
    port: int = field(default_factory=free_port)
    proxy: ServiceProcess | None = None
    starts: int = 0
    last_ready_seconds: float = 0.0

    @property
    def local_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def gateway_env(self) -> dict[str, str]:
        """Settings that point a pod at this proxy."""
        return {
            "LITELLM_BASE_URL": f"http://{CONTAINER_HOST}:{self.port}",
            "LITELLM_API_KEY": self.master_key,
        }

    def start(self) -> float:
        """Start the proxy and block until it answers; returns seconds to ready."""
        config = fake_upstream_config(self.upstream.base_url, models=self.models)
        config_path = write_config(config, self.workdir / "litellm-config.yaml")
        self.starts += 1
        log_path = self.workdir / f"litellm-{self.port}-{self.starts}.log"
        env = {"LITELLM_MASTER_KEY": self.master_key}
        self.proxy = spawn_litellm_proxy(
            litellm_venv(), config_path, self.port, log_path, env, host=ANY_ADDRESS
        )
        try:
            self.last_ready_seconds = self.proxy.wait_ready(READY_PATH, LITELLM_READY_TIMEOUT)
        except BaseException:
            self.proxy.stop()
            self.proxy = None
            raise
        return self.last_ready_seconds

    def warm_up(self) -> None:
        """One plain and one streamed call: LiteLLM's first calls pay seconds of lazy set-up."""
        headers = {"Authorization": f"Bearer {self.master_key}"}
        body = {"model": "fake-model", "messages": [{"role": "user", "content": "warm up"}]}
        with httpx.Client(base_url=self.local_url, headers=headers, timeout=60) as client:
            client.post("/v1/chat/completions", json=body).raise_for_status()
            with client.stream(
                "POST", "/v1/chat/completions", json={**body, "stream": True}
            ) as response:
                response.raise_for_status()
                response.read()

    def stop(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
            self.proxy = None

    def close(self) -> None:
        try:
            self.stop()
        finally:
            self.upstream.stop()


def start_host_litellm(workdir: Path, extra_models: tuple[str, ...] = ()) -> HostLiteLLM:
    """Fake upstream + proxy, started and warmed up; everything stopped again on failure.

    `extra_models` are served besides the default ones (e.g. a model the test makes slow).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    upstream = start_fake_upstream(workdir)
    stack = HostLiteLLM(workdir=workdir, upstream=upstream, models=DEFAULT_MODELS + extra_models)
    try:
        stack.start()
        stack.warm_up()
        upstream.clear()
    except BaseException:
        stack.close()
        raise
    return stack


@dataclass
class HostMlflow:
    """`mlflow server` on a fixed port and store, so a restart keeps the traces already sent."""

    workdir: Path
    port: int = field(default_factory=free_port)
    server: MlflowServer | None = None
    starts: int = 0

    @property
    def local_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def container_url(self) -> str:
        return f"http://{CONTAINER_HOST}:{self.port}"

    def start(self) -> float:
        """Start the server and block until GET /health answers; returns seconds to ready."""
        started = time.monotonic()
        self.starts += 1
        self.server = start_mlflow_server(
            mlflow_venv(),
            self.port,
            self.workdir / "store",
            self.workdir / f"mlflow-{self.starts}.log",
            host=ANY_ADDRESS,
            allowed_hosts=MLFLOW_ALLOWED_HOSTS,
        )
        try:
            self.server.wait_ready(timeout=START_TIMEOUT)
        except BaseException:
            self.stop()
            raise
        return time.monotonic() - started

    def stop(self) -> None:
        if self.server is not None:
            with contextlib.suppress(Exception):
                self.server.stop()
            self.server = None
