"""Rolling restart of 2 replicas under real LLM traffic, with the chart's preStop and without it.

The first case is the chart's promise (issue 5, item 1): while the pods are replaced one by one
(maxSurge 1, maxUnavailable 0), ~50 LLM calls per second go through the Service to the pods,
through a real LiteLLM proxy, to the fake upstream; besides them, clients keep long calls (a model
the fake answers only after LONG_SECONDS) and SSE streams (STREAM_CHUNKS chunks, CHUNK_DELAY
apart) in flight all along. Calls and streams last longer than preStop minus the propagation
delay, so some are in flight when SIGTERM arrives and the drain has real work. Nothing may fail,
every stream must end with `data: [DONE]`, every old container must exit 0 before its grace
period, and each of its workers must log the drain story.

The second is the negative control (item 2): the same rollout with preStop removed, while endpoint
removal still lands late, must fail requests; if it did not, the first case would prove nothing.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
from collections.abc import AsyncIterator, Mapping

import httpx
import pytest
import pytest_asyncio

from tests.e2e.harness.deployment import PodFactory, rolling_restart
from tests.e2e.harness.endpoints import Endpoints, ServiceProxy
from tests.e2e.harness.host_services import HostLiteLLM, start_host_litellm
from tests.e2e.harness.kubelet import TerminationRecord
from tests.e2e.harness.pod import PodSpec
from tests.e2e.harness.traffic import OK, Traffic, TrafficReport
from tests.support.logs import parse_json_lines

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

READY_TIMEOUT = 120.0
PROPAGATION_DELAY = 1.0
# 50 requests/s through the Service: LLM_CALLS_PER_SECOND real LLM calls (gateway -> LiteLLM ->
# fake upstream) plus /health for the rest. One LiteLLM worker saturates below 25 calls/s on this
# 2-core machine (p50 1.8 s at 25/s, measured), and an overloaded upstream would fail calls for
# reasons that have nothing to do with the rollout.
REQUESTS_PER_SECOND = 50
LLM_CALLS_PER_SECOND = 10
STEADY_MODEL = "fake-model"
LONG_MODEL = "slow-model"
LONG_SECONDS = 10.0
LONG_LOOPS = 16
STREAM_MODEL = "stream-model"
STREAM_CHUNKS = 20
CHUNK_DELAY = 0.5
STREAM_LOOPS = 8
USER = {"username": "user", "password": "dev-password"}  # k8s/values-kind.yaml
DRAIN_STORY = [
    "shutdown_signal_received",
    "waiting_for_in_flight_requests",
    "in_flight_requests_drained",
    "graceful_shutdown_completed",
]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def llm(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[HostLiteLLM]:
    stack = await asyncio.to_thread(
        start_host_litellm, tmp_path_factory.mktemp("litellm"), (LONG_MODEL, STREAM_MODEL)
    )
    try:
        yield stack
    finally:
        await asyncio.to_thread(stack.close)


def configure_upstream(llm: HostLiteLLM) -> None:
    llm.upstream.clear()
    llm.upstream.control(model=LONG_MODEL, latency_ms=LONG_SECONDS * 1000)
    llm.upstream.control(
        model=STREAM_MODEL, stream_chunks=STREAM_CHUNKS, chunk_delay_ms=CHUNK_DELAY * 1000
    )


def pod_env(llm: HostLiteLLM) -> dict[str, str]:
    # No Qdrant here and every prompt is new: the cache is off. The load comes from one client
    # address and one user: the rate limits are off. LiteLLM is the test's host process.
    return {**llm.gateway_env(), "CACHE_ENABLED": "false", "RATE_LIMIT_ENABLED": "false"}


@dataclasses.dataclass
class RolloutFacts:
    traffic: TrafficReport
    terminations: dict[str, TerminationRecord]
    routed: dict[str, int]
    upstream_errors: int
    no_endpoint: int
    new_ready: list[bool]
    worker_logs: dict[str, dict[int, list[Mapping[str, object]]]]  # old pod -> pid -> records


async def _login(url: str) -> str:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        response = await client.post("/auth/login", json=USER)
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])


async def _rollout(
    pods: PodFactory, spec: PodSpec, llm: HostLiteLLM, *, long_and_streams: bool
) -> RolloutFacts:
    service = ServiceProxy(Endpoints(propagation_delay=PROPAGATION_DELAY))
    await service.start()
    factory = dataclasses.replace(
        pods,
        endpoints=service.endpoints,
        pods=[],
        template=spec,
        env_overrides={**pods.env_overrides, **pod_env(llm)},
    )
    configure_upstream(llm)
    try:
        old = [await factory.create(), await factory.create()]
        await asyncio.gather(*(pod.kubelet.wait_ready(READY_TIMEOUT) for pod in old))
        await asyncio.sleep(PROPAGATION_DELAY + 0.2)
        traffic = Traffic(
            service.url,
            await _login(service.url),
            rate=LLM_CALLS_PER_SECOND,
            steady_model=STEADY_MODEL,
            cheap_rate=REQUESTS_PER_SECOND - LLM_CALLS_PER_SECOND,
            long_model=LONG_MODEL if long_and_streams else None,
            long_loops=LONG_LOOPS,
            stream_model=STREAM_MODEL if long_and_streams else None,
            stream_loops=STREAM_LOOPS,
            long_spread=LONG_SECONDS,
            stream_spread=STREAM_CHUNKS * CHUNK_DELAY,
        )
        await traffic.start()
        await asyncio.sleep(2)  # the load is steady before the first pod goes
        rollout = await rolling_restart(factory, old, ready_timeout=READY_TIMEOUT)
        report = await traffic.stop()
        worker_logs: dict[str, dict[int, list[Mapping[str, object]]]] = {}
        for pod in old:
            by_pid: dict[int, list[Mapping[str, object]]] = collections.defaultdict(list)
            for record in parse_json_lines(await pod.container.logs()):
                by_pid[int(record["pid"])].append(record)
            worker_logs[pod.name] = dict(by_pid)
        return RolloutFacts(
            traffic=report,
            terminations=rollout.terminations,
            routed=dict(service.stats.routed),
            upstream_errors=service.stats.upstream_errors,
            no_endpoint=service.stats.no_endpoint,
            new_ready=[pod.kubelet.ready for pod in rollout.new_pods],
            worker_logs=worker_logs,
        )
    finally:
        await factory.cleanup()
        await service.close()


def in_flight_at_sigterm(logs: dict[int, list[Mapping[str, object]]]) -> int:
    return sum(
        int(str(record.get("in_flight", 0)))
        for records in logs.values()
        for record in records
        if record.get("message") == "waiting_for_in_flight_requests"
    )


async def test_rolling_restart_with_the_charts_pre_stop_fails_no_request(
    pods: PodFactory, pod_spec: PodSpec, llm: HostLiteLLM
) -> None:
    assert pod_spec.pre_stop is not None and pod_spec.pre_stop.seconds > PROPAGATION_DELAY
    # In flight at SIGTERM needs calls longer than the time the pod is still sent new ones.
    assert pod_spec.pre_stop.seconds - PROPAGATION_DELAY < LONG_SECONDS
    assert pod_spec.pre_stop.seconds - PROPAGATION_DELAY < STREAM_CHUNKS * CHUNK_DELAY

    facts = await _rollout(pods, pod_spec, llm, long_and_streams=True)

    print(f"\n[e2e] rollout with preStop {pod_spec.pre_stop.seconds:.0f} s under LLM load:")
    print(f"[e2e]   traffic: {facts.traffic.summary()}")
    print(f"[e2e]   routed {facts.routed}; proxy upstream errors {facts.upstream_errors}")
    for name, record in facts.terminations.items():
        print(
            f"[e2e]   {name}: exit {record.exit_code} {record.seconds_to_exit:.1f} s after "
            f"delete ({record.seconds_after_sigterm:.1f} s after SIGTERM), "
            f"{in_flight_at_sigterm(facts.worker_logs[name])} requests in flight at SIGTERM"
        )
    report = facts.traffic
    assert report.failed() == 0, report.summary()
    assert set(report.steady) == {OK} and set(report.cheap) == {OK}
    # The load really ran through the whole rollout, at the rate asked for.
    assert report.steady[OK] >= 0.8 * LLM_CALLS_PER_SECOND * report.load_seconds
    cheap_rate = REQUESTS_PER_SECOND - LLM_CALLS_PER_SECOND
    assert report.cheap[OK] >= 0.8 * cheap_rate * report.load_seconds
    assert report.long[OK] >= LONG_LOOPS and set(report.long) == {OK}
    assert report.streams[OK] >= STREAM_LOOPS and set(report.streams) == {OK}
    assert min(report.long_seconds) >= LONG_SECONDS
    assert facts.upstream_errors == 0
    assert facts.no_endpoint == 0  # maxUnavailable 0: a Ready pod was there all along
    assert facts.new_ready == [True, True]
    for name, record in facts.terminations.items():
        assert record.exit_code == 0, name
        assert record.sigkill_at is None, name
        assert record.seconds_to_exit < pod_spec.termination_grace_period_seconds, name
        workers = [
            [r["message"] for r in records if r["message"] in DRAIN_STORY]
            for records in facts.worker_logs[name].values()
            if any(r["message"] == "shutdown_signal_received" for r in records)
        ]
        assert len(workers) == int(pod_spec.env.get("WEB_CONCURRENCY", "2")), name
        assert all(story == DRAIN_STORY for story in workers), (name, workers)
    # The drain had work: calls were in flight when SIGTERM came, and they completed (above).
    assert sum(in_flight_at_sigterm(logs) for logs in facts.worker_logs.values()) > 0


async def test_negative_control_without_pre_stop_the_same_rollout_fails_requests(
    pods: PodFactory, pod_spec: PodSpec, llm: HostLiteLLM
) -> None:
    spec = dataclasses.replace(pod_spec, pre_stop=None)

    facts = await _rollout(pods, spec, llm, long_and_streams=False)

    failed = facts.traffic.failed()
    print(f"\n[e2e] rollout without preStop: {facts.traffic.summary()}; failed {failed}")
    assert failed > 0, "the harness cannot see the failure preStop prevents"
    assert facts.upstream_errors > 0  # sent to pods that had stopped listening
    assert facts.no_endpoint == 0  # the failures are pods sent traffic while shutting down
