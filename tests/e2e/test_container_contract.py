"""The built image, run from the pod spec under the kubelet emulator (issue 5, items 5 and SIGTERM).

What Kubernetes relies on: the image runs as the non-root user on a read-only root filesystem
and still serves, gunicorn is PID 1 (so SIGTERM reaches it), and a deleted pod drains and exits 0
before its grace period with the drain story in its JSON logs.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import time
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from tests.e2e.harness.deployment import Pod, PodFactory
from tests.e2e.harness.endpoints import BACKEND_HEADER, Endpoints, ServiceProxy
from tests.support.logs import parse_json_lines

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

READY_TIMEOUT = 90.0
WORKER_SHUTDOWN_STORY = [
    "shutdown_signal_received",
    "clients_closed",
    "graceful_shutdown_completed",
]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def ready_pod(pods: PodFactory) -> AsyncIterator[tuple[Pod, float, float]]:
    """One pod shared by the read-only checks: (pod, seconds to Ready, seconds to first 200)."""
    pod = await pods.create()
    # Polled alongside the kubelet: how soon the process could be Ready, apart from probe periods.
    first_answer = asyncio.create_task(_first_ready_answer(pod.container.url("http", "/readyz")))
    seconds_to_ready = await pod.kubelet.wait_ready(READY_TIMEOUT)
    answered = (await first_answer) - pod.kubelet.container_started_at
    yield pod, seconds_to_ready, answered


async def test_pod_becomes_ready_and_serves_through_the_service(
    ready_pod: tuple[Pod, float, float], service: ServiceProxy
) -> None:
    pod, seconds_to_ready, answered = ready_pod
    startup = pod.container.spec.startup_probe
    period = startup.period_seconds if startup else 0
    print(f"\n[e2e] container start -> Ready (kubelet, startup period {period} s): ", end="")
    print(f"{seconds_to_ready:.2f} s")
    print(f"[e2e] container start -> first 200 on /readyz (50 ms polling): {answered:.2f} s")

    await asyncio.sleep(service.endpoints.propagation_delay + 0.2)
    async with httpx.AsyncClient(base_url=service.url, timeout=10) as client:
        responses = [await client.get("/readyz") for _ in range(4)]

    assert [r.status_code for r in responses] == [200] * 4
    assert {r.headers[BACKEND_HEADER] for r in responses} == {pod.name}
    assert all(r.headers.get("x-request-id", "").startswith("req_") for r in responses)


async def _first_ready_answer(url: str) -> float:
    async with httpx.AsyncClient(timeout=2) as client:
        while True:
            try:
                if (await client.get(url)).status_code == 200:
                    return time.monotonic()
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.05)


async def test_runs_as_uid_10001_on_a_read_only_root_and_writes_only_tmp_and_data(
    ready_pod: tuple[Pod, float, float],
) -> None:
    container = ready_pod[0].container

    identity = await container.exec(["id", "-u"])
    root_write = await container.exec(["sh", "-c", "touch /opt/venv/probe"])
    app_write = await container.exec(["sh", "-c", "touch /app/probe"])
    tmp_write = await container.exec(["sh", "-c", "touch /tmp/probe"])
    data_write = await container.exec(["sh", "-c", "touch /data/probe"])
    mounted = (await container.exec(["cat", "/proc/mounts"])).stdout

    assert identity.stdout.strip() == "10001"
    assert root_write.returncode != 0 and "Read-only file system" in root_write.stderr
    assert app_write.returncode != 0
    assert tmp_write.returncode == 0, tmp_write.stderr
    assert data_write.returncode == 0, data_write.stderr
    root_line = next(line for line in mounted.splitlines() if line.split()[1] == "/")
    assert root_line.split()[3].startswith("ro"), root_line
    async with httpx.AsyncClient(timeout=5) as client:
        health = await client.get(container.url("http", "/health"))
    assert health.status_code == 200
    assert health.json()["status"] == "alive"


async def test_metrics_from_every_worker_are_served_with_the_multiprocess_dir_on_tmp(
    ready_pod: tuple[Pod, float, float],
) -> None:
    container = ready_pod[0].container
    async with httpx.AsyncClient(timeout=5) as client:
        for _ in range(4):  # spread over both workers
            await client.get(container.url("http", "/health"))
        metrics = await client.get(container.url("http", "/metrics"))
    files = (await container.exec(["sh", "-c", "ls -la /tmp/*/"])).stdout

    assert metrics.status_code == 200
    assert "http_requests_total{" in metrics.text, (
        "empty /metrics under gunicorn: was prometheus_client imported in the master before "
        f"PROMETHEUS_MULTIPROC_DIR was set? (workers then keep in-memory values); files: {files}"
    )


async def test_pid_1_is_gunicorn_with_its_workers_as_children(
    ready_pod: tuple[Pod, float, float],
) -> None:
    pod = ready_pod[0]

    processes = await pod.container.processes()

    assert "-m gunicorn" in processes[1], processes[1]
    assert processes[1].split()[0] == "/opt/venv/bin/python"
    workers = [pid for pid, cmd in processes.items() if pid != 1 and "gunicorn" in cmd]
    assert len(workers) == int(pod.container.spec.env.get("WEB_CONCURRENCY", "2"))


async def test_deleting_the_pod_drains_serves_until_removed_and_exits_zero(
    pods: PodFactory,
) -> None:
    # Its own Service: this pod alone behind it, so every request reaches it until its removal.
    service = ServiceProxy(Endpoints(propagation_delay=1.0))
    await service.start()
    try:
        own_pods = dataclasses.replace(pods, endpoints=service.endpoints, pods=[])
        await _delete_pod_under_load(own_pods, service)
    finally:
        await own_pods.cleanup()
        await service.close()


async def _delete_pod_under_load(pods: PodFactory, service: ServiceProxy) -> None:
    pod = await pods.create()
    await pod.kubelet.wait_ready(READY_TIMEOUT)
    await asyncio.sleep(service.endpoints.propagation_delay + 0.2)
    statuses: collections.Counter[int | str] = collections.Counter()
    stop = asyncio.Event()

    async def steady_load() -> None:
        async with httpx.AsyncClient(base_url=service.url, timeout=10) as client:
            while not stop.is_set():
                try:
                    statuses[(await client.get("/livez")).status_code] += 1
                except httpx.HTTPError as exc:
                    statuses[type(exc).__name__] += 1
                await asyncio.sleep(0.02)

    load = asyncio.create_task(steady_load())
    record = await pod.kubelet.terminate()
    stop.set()
    await load
    logs = await pod.container.logs()

    spec = pod.container.spec
    print(
        f"\n[e2e] termination: preStop {spec.pre_stop}, SIGTERM -> exit "
        f"{record.seconds_after_sigterm:.2f} s, delete -> exit {record.seconds_to_exit:.2f} s "
        f"(grace {spec.termination_grace_period_seconds:.0f} s); requests {dict(statuses)}"
    )
    assert record.exit_code == 0
    assert record.sigkill_at is None
    assert record.seconds_to_exit < spec.termination_grace_period_seconds
    assert record.prestop_finished_at is not None and record.sigterm_at is not None
    assert record.prestop_finished_at <= record.sigterm_at
    # The pod kept serving until the Service dropped it: every request it was sent succeeded,
    # and the ones after the removal found no endpoint instead of a dead pod.
    assert service.stats.upstream_errors == 0
    assert statuses[200] > 0
    assert set(statuses) <= {200, 503}, statuses
    assert statuses[503] == service.stats.no_endpoint

    records = parse_json_lines(logs)
    by_pid: dict[int, list[str]] = collections.defaultdict(list)
    for line in records:
        by_pid[line["pid"]].append(line["message"])
    worker_stories = [m for m in by_pid.values() if "shutdown_signal_received" in m]
    assert len(worker_stories) == int(spec.env.get("WEB_CONCURRENCY", "2"))
    for story in worker_stories:
        assert [m for m in story if m in WORKER_SHUTDOWN_STORY] == WORKER_SHUTDOWN_STORY
    assert "gunicorn_stopped" in by_pid[1]
