"""`kubectl rollout restart` of 2 replicas under load through the Service (ClusterIP, so through
kube-proxy's rules), with long calls and SSE streams in flight, on the chart's drain settings:
no request fails and every stream ends with `data: [DONE]`.

The negative control takes the chart's drain away (no preStop, a 2 s grace period) on the same
Deployment and repeats the rollout: requests must fail, or the first case proves nothing.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.cluster.conftest import (
    LONG_MODEL,
    STEADY_MODEL,
    STREAM_MODEL,
    Release,
    login,
)
from tests.cluster.kube import Kube
from tests.e2e.harness.traffic import OK, Traffic, TrafficReport
from tests.support.fake_upstream import FakeUpstreamProcess

# A 2-core machine runs the whole cluster: a modest steady rate, most of it cheap requests.
LLM_CALLS_PER_SECOND = 5
CHEAP_PER_SECOND = 20
LONG_SECONDS = 8.0
LONG_LOOPS = 6
STREAM_CHUNKS = 16
CHUNK_DELAY = 0.5
STREAM_LOOPS = 4
ROLLOUT_TIMEOUT = "600s"


def configure_upstream(upstream: FakeUpstreamProcess) -> None:
    upstream.clear()
    upstream.control(model=LONG_MODEL, latency_ms=LONG_SECONDS * 1000)
    upstream.control(
        model=STREAM_MODEL, stream_chunks=STREAM_CHUNKS, chunk_delay_ms=CHUNK_DELAY * 1000
    )


async def rollout_under_load(release: Release, with_long_and_streams: bool) -> TrafficReport:
    url = release.service_url()
    traffic = Traffic(
        url,
        await asyncio.to_thread(login, url),
        rate=LLM_CALLS_PER_SECOND,
        steady_model=STEADY_MODEL,
        cheap_rate=CHEAP_PER_SECOND,
        long_model=LONG_MODEL if with_long_and_streams else None,
        long_loops=LONG_LOOPS,
        stream_model=STREAM_MODEL if with_long_and_streams else None,
        stream_loops=STREAM_LOOPS,
        long_spread=LONG_SECONDS,
        stream_spread=STREAM_CHUNKS * CHUNK_DELAY,
    )
    await traffic.start()
    try:
        await asyncio.sleep(LONG_SECONDS)  # steady load, long calls and streams in flight
        kube = release.kube
        await asyncio.to_thread(kube.kubectl, "rollout", "restart", f"deployment/{release.name}")
        await asyncio.to_thread(
            kube.kubectl,
            "rollout",
            "status",
            f"deployment/{release.name}",
            f"--timeout={ROLLOUT_TIMEOUT}",
            timeout=660,
        )
        await asyncio.to_thread(release.wait_settled)
        await asyncio.sleep(2)
    finally:
        report = await traffic.stop()
    return report


def drain_settings(kube: Kube, name: str) -> dict[str, Any]:
    spec = kube.get("deployment", name)["spec"]["template"]["spec"]
    return {
        "grace": spec["terminationGracePeriodSeconds"],
        "lifecycle": spec["containers"][0].get("lifecycle"),
    }


def patch_drain(kube: Kube, name: str, grace: int, lifecycle: dict[str, Any] | None) -> None:
    container = {
        "name": kube.get("deployment", name)["spec"]["template"]["spec"]["containers"][0]["name"]
    }
    container["lifecycle"] = lifecycle  # type: ignore[assignment]
    patch = {
        "spec": {
            "template": {
                "spec": {"terminationGracePeriodSeconds": grace, "containers": [container]}
            }
        }
    }
    kube.kubectl("patch", "deployment", name, "--type=strategic", "-p", json.dumps(patch))
    kube.kubectl(
        "rollout", "status", f"deployment/{name}", f"--timeout={ROLLOUT_TIMEOUT}", timeout=660
    )


@pytest.mark.asyncio
async def test_rolling_restart_under_load_fails_no_request(
    release: Release, upstream: FakeUpstreamProcess
) -> None:
    configure_upstream(upstream)
    release.wait_settled()
    report = await rollout_under_load(release, with_long_and_streams=True)
    print(f"\n[cluster] rollout restart with the chart's drain: {report.summary()}")
    assert report.failed() == 0, report.summary()
    assert set(report.steady) == {OK} and set(report.cheap) == {OK}
    assert report.steady[OK] >= 0.8 * LLM_CALLS_PER_SECOND * report.load_seconds
    assert report.long[OK] >= LONG_LOOPS and set(report.long) == {OK}
    assert report.streams[OK] >= STREAM_LOOPS and set(report.streams) == {OK}
    assert min(report.long_seconds) >= LONG_SECONDS


@pytest.mark.asyncio
async def test_negative_control_without_the_drain_fails_requests(
    release: Release, upstream: FakeUpstreamProcess
) -> None:
    kube = release.kube
    original = drain_settings(kube, release.name)
    assert original["lifecycle"] and original["lifecycle"].get("preStop"), "chart sets preStop"
    configure_upstream(upstream)
    await asyncio.to_thread(patch_drain, kube, release.name, 2, None)
    try:
        await asyncio.to_thread(release.wait_settled)
        report = await rollout_under_load(release, with_long_and_streams=True)
        print(f"\n[cluster] rollout restart without preStop, 2 s grace: {report.summary()}")
        assert report.failed() > 0, "without the drain some requests must fail: " + report.summary()
    finally:
        await asyncio.to_thread(
            patch_drain, kube, release.name, original["grace"], original["lifecycle"]
        )
        await asyncio.to_thread(release.wait_settled)
