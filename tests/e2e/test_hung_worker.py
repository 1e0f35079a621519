"""A hung pod is taken out of the Service by readiness and restarted by liveness (issue 5, item 3).

Two pods behind the Service. What "hung" means matters:
- One SIGSTOPped worker is NOT a hung pod: the other worker keeps accepting on the shared socket,
  so /livez keeps answering and liveness rightly does not restart anything (the gunicorn master's
  worker timeout deals with a stuck worker). The first test shows exactly that.
- Every process stopped (the workers with SIGSTOP from inside, PID 1 with SIGSTOP from the host,
  as only an ancestor PID namespace can stop a namespace's init) is a hung pod: connections queue
  in the backlog unanswered. Readiness must take it out of the endpoints within its budget, the
  Service must keep answering from the other pod, and liveness must restart it: SIGTERM stays
  pending on a stopped process, so the kubelet SIGKILLs it when the grace period is spent.

Budgets: the emulator sleeps `periodSeconds` after each probe (the real kubelet ticks every
period), so a failing probe that uses its whole timeout stretches the interval by that timeout:
detection <= threshold x (period + timeout), plus the period already running when it hung.
"""

from __future__ import annotations

import asyncio
import collections
import time

import httpx
import pytest

from tests.e2e.harness.deployment import Pod, PodFactory
from tests.e2e.harness.endpoints import BACKEND_HEADER, ServiceProxy
from tests.e2e.harness.pod import HttpProbe

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

READY_TIMEOUT = 120.0
SLACK = 2.0  # docker CLI round trips, event-loop scheduling


def detection_budget(probe: HttpProbe) -> float:
    return probe.period_seconds + probe.failure_threshold * (
        probe.period_seconds + probe.timeout_seconds
    )


async def worker_pids(pod: Pod) -> list[int]:
    processes = await pod.container.processes()
    return sorted(pid for pid, cmd in processes.items() if pid != 1 and "gunicorn" in cmd)


async def two_ready_pods(pods: PodFactory, service: ServiceProxy) -> tuple[Pod, Pod]:
    # Rate limits off: the load below is the test's own, from one address.
    overrides = {"RATE_LIMIT_ENABLED": "false", "CACHE_ENABLED": "false"}
    first = await pods.create(env_overrides=overrides)
    second = await pods.create(env_overrides=overrides)
    await asyncio.gather(*(pod.kubelet.wait_ready(READY_TIMEOUT) for pod in (first, second)))
    await asyncio.sleep(service.endpoints.propagation_delay + 0.2)
    return first, second


async def test_one_stopped_worker_does_not_fail_liveness_while_the_other_answers(
    pods: PodFactory, service: ServiceProxy
) -> None:
    pod = await pods.create(env_overrides={"RATE_LIMIT_ENABLED": "false"})
    await pod.kubelet.wait_ready(READY_TIMEOUT)
    stopped, *others = await worker_pids(pod)
    assert others, "the pod needs two workers for this case"
    probe = pod.container.spec.liveness_probe
    assert probe is not None

    assert (await pod.container.signal_process(stopped, "STOP")).returncode == 0
    try:
        answers = collections.Counter[int | str]()
        async with httpx.AsyncClient(limits=httpx.Limits(max_keepalive_connections=0)) as client:
            for _ in range(20):  # fresh connection each, as the kubelet's prober does
                try:
                    response = await client.get(
                        pod.container.url(probe.port, probe.path), timeout=probe.timeout_seconds
                    )
                    answers[response.status_code] += 1
                except httpx.HTTPError as exc:
                    answers[type(exc).__name__] += 1
    finally:
        await pod.container.signal_process(stopped, "CONT")

    print(f"\n[e2e] one SIGSTOPped worker: 20 liveness-style probes -> {dict(answers)}")
    assert answers == {200: 20}
    assert pod.container.event_time("liveness_probe_failed") is None
    # Delete it (endpoints removal included), so the next test's Service has only its own pods.
    assert (await pod.kubelet.terminate()).exit_code == 0


async def test_a_hung_pod_leaves_the_endpoints_and_is_restarted_by_liveness(
    pods: PodFactory, service: ServiceProxy
) -> None:
    hung, healthy = await two_ready_pods(pods, service)
    spec = hung.container.spec
    liveness, readiness = spec.liveness_probe, spec.readiness_probe
    assert liveness is not None and readiness is not None

    workers = await worker_pids(hung)
    for pid in workers:
        assert (await hung.container.signal_process(pid, "STOP")).returncode == 0
    await hung.container.kill("STOP")  # PID 1, from the host: now nothing in the pod answers
    frozen_at = hung.container.record("hung")

    # Readiness: the pod leaves the endpoints; the Service answers from the other pod meanwhile.
    while hung.container.event_time("unready") is None:
        assert time.monotonic() - frozen_at < detection_budget(readiness) + SLACK
        await asyncio.sleep(0.1)
    unready_after = (hung.container.event_time("unready") or 0) - frozen_at
    await asyncio.sleep(service.endpoints.propagation_delay + 0.1)
    assert [pod for pod, _ in service.endpoints.eligible()] == [healthy.name]
    served = collections.Counter[str]()
    async with httpx.AsyncClient(base_url=service.url, timeout=5) as client:
        for _ in range(20):
            response = await client.get("/readyz")
            assert response.status_code == 200
            served[response.headers[BACKEND_HEADER]] += 1
    assert served == {healthy.name: 20}

    # Liveness: the hung container is killed (SIGTERM stays pending, SIGKILL at the grace
    # period's end) and started again.
    while hung.container.event_time("liveness_probe_failed") is None:
        assert time.monotonic() - frozen_at < detection_budget(liveness) + SLACK
        await asyncio.sleep(0.2)
    detected_after = (hung.container.event_time("liveness_probe_failed") or 0) - frozen_at
    restart_budget = detection_budget(liveness) + spec.termination_grace_period_seconds + 10
    while hung.kubelet.restarts == 0:
        assert time.monotonic() - frozen_at < restart_budget
        await asyncio.sleep(0.2)
    (killed,) = hung.kubelet.terminations
    ready_again = await hung.kubelet.wait_ready(READY_TIMEOUT)
    restarted_after = hung.kubelet.container_started_at - frozen_at
    assert restarted_after < restart_budget
    await asyncio.sleep(service.endpoints.propagation_delay + 0.1)
    assert sorted(pod for pod, _ in service.endpoints.eligible()) == sorted(
        [hung.name, healthy.name]
    )
    async with httpx.AsyncClient(base_url=service.url, timeout=5) as client:
        answered_by = {(await client.get("/readyz")).headers[BACKEND_HEADER] for _ in range(6)}
    assert answered_by == {hung.name, healthy.name}
    assert healthy.kubelet.restarts == 0

    print(
        f"\n[e2e] hung pod (all processes SIGSTOPped): unready after {unready_after:.1f} s "
        f"(budget {detection_budget(readiness):.0f} s), liveness failed after "
        f"{detected_after:.1f} s (budget {detection_budget(liveness):.0f} s); SIGTERM "
        f"ignored, SIGKILL {'sent' if killed.sigkill_at else 'NOT sent'} "
        f"{(killed.sigkill_at or 0) - killed.requested_at:.1f} s after the kill began "
        f"(grace {spec.termination_grace_period_seconds:.0f} s), exit code {killed.exit_code}; "
        f"restarted {restarted_after:.1f} s after the hang; Ready again {ready_again:.1f} s "
        f"after the restart; the Service answered 20/20 from {healthy.name} meanwhile"
    )
    assert killed.sigkill_at is not None  # a stopped process never acts on SIGTERM
    assert killed.exit_code == 137
