"""Shared dependencies go down under a Ready pod, and come back (issue 5, item 4).

One pod from the chart's spec, with LiteLLM (in front of the controllable fake upstream) and an
MLflow server as host processes it reaches at host.docker.internal. What must hold:
- LiteLLM stopped: the pod stays Ready (readiness checks no shared dependency by default, so an
  outage does not empty the Service), /health/detailed says 503 degraded with litellm down, the
  circuit opens after BREAKER_FAILURE_THRESHOLD failed calls and then answers fast 503s with
  Retry-After; LiteLLM started again on the same port: the half-open probe closes the circuit.
- MLflow stopped: LLM calls still succeed, their traces go to the journal on the pod's data
  volume; MLflow started again on the same store: every journaled trace arrives, counted by the
  request ids the calls returned.

The pod runs with WEB_CONCURRENCY=1 (env override): breaker state is per worker, and one worker
makes "opens after exactly N failures" an exact assertion. RETRIES_AFTER_FIRST_TRY=0 so one call is
one upstream attempt, i.e. one breaker failure. The cache is off (no Qdrant here, and a cached
answer would hide the outage) and rate limits are off (the calls are the test's, not abuse).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.e2e.harness.deployment import Pod, PodFactory
from tests.e2e.harness.endpoints import ServiceProxy
from tests.e2e.harness.host_services import HostLiteLLM, HostMlflow, start_host_litellm
from tests.support.mlflow_server import all_traces

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

READY_TIMEOUT = 120.0
BREAKER_THRESHOLD = 5
BREAKER_RECOVERY = 5.0
HEALTH_TTL = 1.0
REPLAY_INTERVAL = 2.0
EXPERIMENT = "llm-gateway"  # the gateway's default MLFLOW_EXPERIMENT_NAME
ADMIN = {"username": "admin", "password": "dev-password"}  # k8s/values-kind.yaml
FAST_REFUSAL_SECONDS = 0.5


@dataclass
class Deps:
    litellm: HostLiteLLM
    mlflow: HostMlflow


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def deps(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Deps]:
    workdir = tmp_path_factory.mktemp("deps")
    mlflow = HostMlflow(workdir / "mlflow")
    # Both boots cost tens of seconds of CPU: overlap them.
    litellm_task = asyncio.create_task(asyncio.to_thread(start_host_litellm, workdir / "litellm"))
    mlflow_task = asyncio.create_task(asyncio.to_thread(mlflow.start))
    results = await asyncio.gather(litellm_task, mlflow_task, return_exceptions=True)
    litellm = results[0] if isinstance(results[0], HostLiteLLM) else None
    try:
        for result in results:
            if isinstance(result, BaseException):
                raise result
        assert litellm is not None
        yield Deps(litellm, mlflow)
    finally:
        if litellm is not None:
            await asyncio.to_thread(litellm.close)
        await asyncio.to_thread(mlflow.stop)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pod(pods: PodFactory, deps: Deps, service: ServiceProxy) -> Pod:
    overrides = {
        **deps.litellm.gateway_env(),
        "MLFLOW_TRACKING_URI": deps.mlflow.container_url,
        "WEB_CONCURRENCY": "1",
        "CACHE_ENABLED": "false",
        "RATE_LIMIT_ENABLED": "false",
        "RETRIES_AFTER_FIRST_TRY": "0",
        "BREAKER_FAILURE_THRESHOLD": str(BREAKER_THRESHOLD),
        "BREAKER_RECOVERY_SECONDS": str(BREAKER_RECOVERY),
        "HEALTH_CACHE_TTL": str(HEALTH_TTL),
        "TRACE_REPLAY_INTERVAL": str(REPLAY_INTERVAL),
        "UPSTREAM_REQUEST_TIMEOUT": "5",
        "DEFAULT_MODEL": "fake-model",
    }
    created = await pods.create("outage-pod", env_overrides=overrides)
    await created.kubelet.wait_ready(READY_TIMEOUT)
    await asyncio.sleep(service.endpoints.propagation_delay + 0.2)
    return created


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(pod: Pod, service: ServiceProxy) -> AsyncIterator[httpx.AsyncClient]:
    """An admin's client through the Service."""
    async with httpx.AsyncClient(base_url=service.url, timeout=30) as http:
        login = await http.post("/auth/login", json=ADMIN)
        assert login.status_code == 200, login.text
        http.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
        yield http


async def generate(client: httpx.AsyncClient, prompt: str) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await client.post("/llm/generate", json={"prompt": prompt, "model": "fake-model"})
    return response, time.monotonic() - started


async def detailed(client: httpx.AsyncClient) -> httpx.Response:
    return await client.get("/health/detailed")


async def wait_detailed(
    client: httpx.AsyncClient, status_code: int, timeout: float
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        response = await detailed(client)
        if response.status_code == status_code:
            return dict(response.json())
        if time.monotonic() > deadline:
            raise AssertionError(f"/health/detailed never {status_code}: {response.text}")
        await asyncio.sleep(0.2)


def stayed_ready(pod: Pod) -> bool:
    return pod.kubelet.ready and pod.container.event_time("unready") is None


async def test_litellm_outage_keeps_the_pod_ready_opens_the_circuit_and_recovers(
    pod: Pod, deps: Deps, client: httpx.AsyncClient
) -> None:
    first, _ = await generate(client, "before the outage")
    assert first.status_code == 200, first.text
    healthy = await wait_detailed(client, 200, timeout=10)
    assert healthy["checks"]["litellm"]["status"] == "up"

    stopped_at = time.monotonic()
    await asyncio.to_thread(deps.litellm.stop)

    degraded = await wait_detailed(client, 503, timeout=HEALTH_TTL + 5)
    assert degraded["status"] == "degraded"
    assert degraded["checks"]["litellm"]["status"] == "down"

    failures: list[httpx.Response] = []
    refused: httpx.Response | None = None
    refusal_seconds = opened_at = 0.0
    for number in range(BREAKER_THRESHOLD + 3):
        response, seconds = await generate(client, f"during the outage {number}")
        assert response.status_code in (502, 503, 504), response.text
        if response.json()["error"] == "CircuitOpen":
            refused, refusal_seconds = response, seconds
            opened_at = time.monotonic() - seconds
            break
        failures.append(response)
    opened_after = time.monotonic() - stopped_at
    assert refused is not None, [r.json()["error"] for r in failures]
    assert len(failures) == BREAKER_THRESHOLD, [r.json()["error"] for r in failures]
    assert refused.status_code == 503
    assert int(refused.headers["retry-after"]) >= 1
    assert refusal_seconds < FAST_REFUSAL_SECONDS
    fast = [await generate(client, f"refused {n}") for n in range(5)]
    assert all(r.json()["error"] == "CircuitOpen" for r, _ in fast)
    fast_latencies = sorted(seconds for _, seconds in fast)
    breaker = (await wait_detailed(client, 503, timeout=5))["checks"]["circuit_breaker"]
    assert breaker["status"] == "down"
    assert stayed_ready(pod), pod.container.events

    restart_started = time.monotonic()
    boot = await asyncio.to_thread(deps.litellm.start)
    # Past the recovery window (LiteLLM's boot usually covers it): the next call is the probe.
    await asyncio.sleep(max(0.0, opened_at + BREAKER_RECOVERY + 0.2 - time.monotonic()))
    probe, probe_seconds = await generate(client, "after the outage: the half-open probe")
    assert probe.status_code == 200, probe.text
    again, _ = await generate(client, "after the outage: closed again")
    assert again.status_code == 200, again.text
    recovered = await wait_detailed(client, 200, timeout=HEALTH_TTL + 10)
    recovered_after = time.monotonic() - restart_started
    assert recovered["checks"]["circuit_breaker"]["status"] == "up"
    assert stayed_ready(pod), pod.container.events

    print(
        f"\n[e2e] litellm outage: pod stayed Ready; circuit open after {len(failures)} failed "
        f"calls, {opened_after:.2f} s after the stop; fast 503 latency "
        f"{refusal_seconds * 1000:.1f} ms (next 5: median {fast_latencies[2] * 1000:.1f} ms, "
        f"max {fast_latencies[-1] * 1000:.1f} ms); litellm restart {boot:.1f} s; half-open "
        f"probe answered 200 in {probe_seconds * 1000:.0f} ms; healthy again "
        f"{recovered_after:.1f} s after the restart began"
    )


async def journal_text(pod: Pod) -> str:
    data_dir = pod.container.spec.env.get("DATA_DIR", "/data")
    result = await pod.container.exec(["sh", "-c", f"cat {data_dir}/traces/traces-* 2>/dev/null"])
    return result.stdout


def traces_by_request(url: str) -> dict[str, Any]:
    return {t.info.tags.get("request_id"): t for t in all_traces(url, EXPERIMENT)}


async def test_mlflow_outage_journals_traces_and_replays_every_one(
    pod: Pod, deps: Deps, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    await asyncio.to_thread(deps.mlflow.stop)

    request_ids: list[str] = []
    for number in range(8):
        response, _ = await generate(client, f"while mlflow is down {number}")
        assert response.status_code == 200, response.text
        request_ids.append(response.headers["x-request-id"])

    # Every trace of those calls is in the journal on the pod's data volume.
    deadline = time.monotonic() + 15
    while (missing := [r for r in request_ids if r not in await journal_text(pod)]) and (
        time.monotonic() < deadline
    ):
        await asyncio.sleep(0.5)
    assert not missing, f"not journaled: {missing}"
    assert '"trace_export_failed"' in await pod.container.logs()

    boot = await asyncio.to_thread(deps.mlflow.start)
    ready_at = time.monotonic()
    deadline = ready_at + REPLAY_INTERVAL * 5 + 20
    while True:
        on_server = await asyncio.to_thread(traces_by_request, deps.mlflow.local_url)
        missing = [r for r in request_ids if r not in on_server]
        if not missing or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    replayed_after = time.monotonic() - ready_at
    assert not missing, f"never replayed: {missing}"
    for request_id in request_ids:
        assert on_server[request_id].info.trace_id.startswith("tr-")
    assert '"trace_journal_replayed"' in await pod.container.logs()
    assert stayed_ready(pod), pod.container.events

    print(
        f"\n[e2e] mlflow outage: {len(request_ids)} calls answered 200 while it was down, all "
        f"journaled; mlflow restart {boot:.1f} s; "
        f"all {len(request_ids)} traces on the server {replayed_after:.1f} s after it was ready "
        f"(replay interval {REPLAY_INTERVAL:.0f} s)"
    )
