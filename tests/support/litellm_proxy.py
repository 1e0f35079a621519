"""A real LiteLLM proxy (its own venv) in front of the controllable fake upstream, for tests.

    stack = start_litellm_stack(tmp_dir)          # ~20-40 s: share it per session
    stack.upstream.fault("status", status=503, model="fake-model")
    response = stack.client().post("/v1/chat/completions", json={...})
    gateway_env = stack.gateway_env()             # LITELLM_BASE_URL and LITELLM_API_KEY
    stack.stop()

Models served (see devstack/litellm_config.py): `fake-model`, `primary-model` (falls back to
`secondary-model`), `secondary-model` and the embedding model `fake-embedding`, each routed as
`openai/<name>` to the fake, which names the model in its answer text. LiteLLM's own retries are
off (num_retries 0) and cooldowns disabled, so the gateway's retry policy is what gets measured.

LiteLLM 1.10x refuses to start without a master key, so every stack has one; callers send it as
`Authorization: Bearer <master_key>` (the gateway does so from LITELLM_API_KEY).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
from devstack.litellm import READY_PATH, ensure_litellm_venv, spawn_litellm_proxy
from devstack.litellm_config import (
    DEFAULT_FALLBACKS,
    DEFAULT_MODELS,
    fake_upstream_config,
    write_config,
)
from devstack.processes import ServiceProcess

from tests.support.fake_upstream import FakeUpstreamProcess, start_fake_upstream
from tests.support.processes import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED_CONFIG = (
    REPO_ROOT / "chart" / "llm-gateway" / "charts" / "litellm" / "files" / "config.yaml"
)


def new_master_key() -> str:
    return "sk-test-" + secrets.token_hex(16)


def litellm_venv() -> Path:
    """Build (first time) or reuse `.stack/litellm-venv`; `make litellm-venv` does it ahead."""
    return ensure_litellm_venv(REPO_ROOT)


def start_proxy(
    config_path: Path,
    work_dir: Path,
    *,
    master_key: str,
    env: Mapping[str, str] | None = None,
    ready_timeout: float = 300.0,
    wait: bool = True,
) -> ServiceProcess:
    """The proxy on a free loopback port with `config_path`.

    With `wait` (default) it is ready when this returns; otherwise call `wait_proxy_ready`.
    """
    port = free_port()
    full_env = {"LITELLM_MASTER_KEY": master_key, **(env or {})}
    proxy = spawn_litellm_proxy(
        litellm_venv(), config_path, port, work_dir / f"litellm-{port}.log", full_env
    )
    if wait:
        wait_proxy_ready(proxy, ready_timeout)
    return proxy


def wait_proxy_ready(proxy: ServiceProcess, timeout: float = 300.0) -> None:
    """Block until the proxy answers its liveliness probe; stop it and raise if it cannot."""
    try:
        proxy.wait_ready(READY_PATH, timeout=timeout)
    except BaseException:
        proxy.stop()
        raise


@dataclass
class LiteLLMStack:
    upstream: FakeUpstreamProcess
    proxy: ServiceProcess
    master_key: str
    config_path: Path

    @property
    def base_url(self) -> str:
        return self.proxy.url

    def client(self, timeout: float = 60.0) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.master_key}"}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def async_client(self, timeout: float = 60.0) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.master_key}"}
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=timeout)

    def gateway_env(self) -> dict[str, str]:
        """Settings that point a gateway process at this proxy."""
        return {"LITELLM_BASE_URL": self.base_url, "LITELLM_API_KEY": self.master_key}

    def warm_up(self, rounds: int = 2) -> None:
        """Plain and streamed calls until LiteLLM's lazy first-call work is done.

        Its first calls of each kind pay seconds of imports and callback set-up (and buffer a
        stream meanwhile), which would distort timing assertions in whichever test came first.
        """
        body = {"model": "fake-model", "messages": [{"role": "user", "content": "warm up"}]}
        with self.client() as client:
            for _ in range(rounds):
                client.post("/v1/chat/completions", json=body).raise_for_status()
                with client.stream(
                    "POST", "/v1/chat/completions", json={**body, "stream": True}
                ) as response:
                    response.raise_for_status()
                    response.read()
        self.upstream.clear()

    def stop(self) -> None:
        try:
            self.proxy.stop()
        finally:
            self.upstream.stop()


def start_litellm_stack(
    work_dir: Path,
    *,
    models: Sequence[str] = DEFAULT_MODELS,
    fallbacks: Mapping[str, Sequence[str]] = DEFAULT_FALLBACKS,
    num_retries: int = 0,
    timeout: float | None = 30.0,
    stream_timeout: float | None = None,
    upstream_latency_ms: float = 0.0,
) -> LiteLLMStack:
    """Fake upstream + a proxy configured for it; everything is stopped again on failure."""
    work_dir.mkdir(parents=True, exist_ok=True)
    upstream = start_fake_upstream(work_dir, latency_ms=upstream_latency_ms)
    master_key = new_master_key()
    config = fake_upstream_config(
        upstream.base_url,
        models=models,
        fallbacks=fallbacks,
        num_retries=num_retries,
        timeout=timeout,
        stream_timeout=stream_timeout,
    )
    config_path = write_config(config, work_dir / "litellm-config.yaml")
    try:
        proxy = start_proxy(config_path, work_dir, master_key=master_key)
    except BaseException:
        upstream.stop()
        raise
    return LiteLLMStack(
        upstream=upstream, proxy=proxy, master_key=master_key, config_path=config_path
    )
