"""Rolling restart of 2 replicas under steady load, with the chart's preStop and without it.

The first case is the chart's promise (issue 5, item 1, on the health routes; the lead adds long
LLM requests and SSE streams once the LLM path runs here): zero failed requests. The second is the
negative control (item 2): the same rollout with preStop removed, while endpoint removal still
lands late, must fail requests; if it did not, the first case would prove nothing.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses

import httpx
import pytest

from tests.e2e.harness.deployment import PodFactory, rolling_restart
from tests.e2e.harness.endpoints import Endpoints, ServiceProxy
from tests.e2e.harness.kubelet import TerminationRecord
from tests.e2e.harness.pod import PodSpec

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

READY_TIMEOUT = 120.0
PROPAGATION_DELAY = 1.0
REQUESTS_PER_SECOND = 25


async def _steady_load(
    url: str, stop: asyncio.Event, outcomes: collections.Counter[int | str]
) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        while not stop.is_set():
            try:
                outcomes[(await client.get("/health")).status_code] += 1
            except httpx.HTTPError as exc:
                outcomes[type(exc).__name__] += 1
            await asyncio.sleep(1 / REQUESTS_PER_SECOND)


@dataclasses.dataclass
class RolloutFacts:
    outcomes: collections.Counter[int | str]  # status code or exception name -> count
    terminations: dict[str, TerminationRecord]
    routed: dict[str, int]
    upstream_errors: int
    no_endpoint: int
    new_ready: list[bool]


async def _rollout(pods: PodFactory, spec: PodSpec) -> RolloutFacts:
    service = ServiceProxy(Endpoints(propagation_delay=PROPAGATION_DELAY))
    await service.start()
    factory = dataclasses.replace(pods, endpoints=service.endpoints, pods=[], template=spec)
    outcomes: collections.Counter[int | str] = collections.Counter()
    try:
        old = [await factory.create(), await factory.create()]
        await asyncio.gather(*(pod.kubelet.wait_ready(READY_TIMEOUT) for pod in old))
        await asyncio.sleep(PROPAGATION_DELAY + 0.2)
        stop = asyncio.Event()
        load = asyncio.create_task(_steady_load(service.url, stop, outcomes))
        rollout = await rolling_restart(factory, old, ready_timeout=READY_TIMEOUT)
        stop.set()
        await load
        return RolloutFacts(
            outcomes=outcomes,
            terminations=rollout.terminations,
            routed=dict(service.stats.routed),
            upstream_errors=service.stats.upstream_errors,
            no_endpoint=service.stats.no_endpoint,
            new_ready=[pod.kubelet.ready for pod in rollout.new_pods],
        )
    finally:
        await factory.cleanup()
        await service.close()


async def test_rolling_restart_with_the_charts_pre_stop_fails_no_request(
    pods: PodFactory, pod_spec: PodSpec
) -> None:
    assert pod_spec.pre_stop is not None and pod_spec.pre_stop.seconds > PROPAGATION_DELAY

    facts = await _rollout(pods, pod_spec)

    print(f"\n[e2e] rollout with preStop {pod_spec.pre_stop.seconds:.0f} s: {facts}")
    assert set(facts.outcomes) == {200}, facts.outcomes
    assert facts.outcomes[200] > REQUESTS_PER_SECOND * 5  # the load really ran through it
    assert facts.upstream_errors == 0
    assert facts.no_endpoint == 0  # maxUnavailable 0: a Ready pod was there all along
    assert facts.new_ready == [True, True]
    for name, record in facts.terminations.items():
        assert record.exit_code == 0, name
        assert record.sigkill_at is None, name
        assert record.seconds_to_exit < pod_spec.termination_grace_period_seconds


async def test_negative_control_without_pre_stop_the_same_rollout_fails_requests(
    pods: PodFactory, pod_spec: PodSpec
) -> None:
    spec = dataclasses.replace(pod_spec, pre_stop=None)

    facts = await _rollout(pods, spec)

    failed = sum(count for outcome, count in facts.outcomes.items() if outcome != 200)
    print(f"\n[e2e] rollout without preStop: {facts}; failed {failed}")
    assert failed > 0, "the harness cannot see the failure preStop prevents"
    assert facts.no_endpoint == 0  # the failures are pods sent traffic while shutting down
