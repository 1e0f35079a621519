"""The kubelet's real probes and the endpoints they gate.

Readiness: a new pod joins the Service's EndpointSlice as ready only after its own /readyz has
answered 200, and a deleted pod leaves it (not ready) while it still serves during preStop.
Liveness: a pod whose every process is stopped (SIGSTOP from the host, which sees the
container's processes; nothing in the product is needed for it) is taken out of the endpoints by
readiness and restarted by the kubelet, which its restart count shows.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx

from tests.cluster.conftest import Release
from tests.cluster.kube import Kube, ready, restarts, wait_for


def endpoint_states(kube: Kube, service: str) -> dict[str, bool]:
    """Pod IP -> ready, over the Service's EndpointSlices."""
    slices = kube.get("endpointslices", None, "-l", f"kubernetes.io/service-name={service}")
    states: dict[str, bool] = {}
    for item in slices["items"]:
        for endpoint in item.get("endpoints") or []:
            for address in endpoint["addresses"]:
                states[address] = bool(endpoint.get("conditions", {}).get("ready"))
    return states


def readyz(pod_ip: str) -> int | None:
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(f"http://{pod_ip}:8000/readyz", timeout=1.0).status_code
    return None


def test_a_pod_joins_the_endpoints_only_after_readyz_answers_200(release: Release) -> None:
    kube = release.kube
    existing = {pod["metadata"]["name"] for pod in release.gateway_pods()}
    kube.kubectl("scale", f"deployment/{release.name}", "--replicas=3")
    try:
        first_200: float | None = None
        first_endpoint_ready: float | None = None
        pod_ip = ""
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and first_endpoint_ready is None:
            new = [p for p in release.gateway_pods() if p["metadata"]["name"] not in existing]
            pod_ip = new[0]["status"].get("podIP", "") if new else ""
            if pod_ip:
                if first_200 is None and readyz(pod_ip) == 200:
                    first_200 = time.monotonic()
                if endpoint_states(kube, release.name).get(pod_ip):
                    first_endpoint_ready = time.monotonic()
            time.sleep(0.1)
        assert first_endpoint_ready is not None, "the new pod never became a ready endpoint"
        assert first_200 is not None, "the endpoint was ready before /readyz ever answered 200"
        assert first_200 <= first_endpoint_ready
    finally:
        kube.kubectl("scale", f"deployment/{release.name}", "--replicas=2")
        release.wait_settled()


def test_a_deleted_pod_leaves_the_endpoints_while_it_still_serves(release: Release) -> None:
    kube = release.kube
    victim = release.gateway_pods()[0]
    name, pod_ip = victim["metadata"]["name"], victim["status"]["podIP"]
    assert endpoint_states(kube, release.name).get(pod_ip) is True
    kube.kubectl("delete", "pod", name, "--wait=false")
    wait_for(
        "the deleted pod to stop being a ready endpoint",
        lambda: not endpoint_states(kube, release.name).get(pod_ip, False),
        timeout=10,
        interval=0.2,
    )
    # preStop is still sleeping: the process has not been told to stop and still answers.
    assert httpx.get(f"http://{pod_ip}:8000/livez", timeout=2).status_code == 200
    release.wait_settled()


def container_pids(pod: dict[str, Any]) -> list[int]:
    """Every process of the pod's gateway container, from its cgroup on this host."""
    container_id = pod["status"]["containerStatuses"][0]["containerID"].split("://", 1)[1]
    pids: set[int] = set()
    for tasks in Path("/sys/fs/cgroup/pids").rglob("cgroup.procs"):
        if container_id in str(tasks.parent):
            pids.update(int(line) for line in tasks.read_text().split())
    assert pids, f"no processes found for container {container_id}"
    return sorted(pids)


def test_a_hung_pod_is_restarted_by_liveness(release: Release) -> None:
    kube = release.kube
    pod = release.gateway_pods()[0]
    name, pod_ip = pod["metadata"]["name"], pod["status"]["podIP"]
    restarts_before = restarts(pod)
    probe = kube.get("pod", name)["spec"]["containers"][0]["livenessProbe"]
    stopped = container_pids(pod)
    for pid in stopped:
        os.kill(pid, signal.SIGSTOP)
    try:
        # Readiness first (2 failures x 5 s), well before liveness (3 x 10 s).
        wait_for(
            "the hung pod to leave the ready endpoints",
            lambda: not endpoint_states(kube, release.name).get(pod_ip, False),
            timeout=60,
        )
        # Liveness fails, then the kubelet kills the container: SIGTERM stays pending on a
        # stopped process, so it takes the grace period and then SIGKILL.
        budget = (
            probe["periodSeconds"] * (probe["failureThreshold"] + 1)
            + probe["timeoutSeconds"] * probe["failureThreshold"]
            + kube.get("pod", name)["spec"]["terminationGracePeriodSeconds"]
            + 60
        )
        wait_for(
            "the kubelet to restart the hung container",
            lambda: restarts(kube.get("pod", name)) > restarts_before,
            timeout=budget,
            interval=1,
        )
    finally:
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
    wait_for("the restarted pod to be Ready", lambda: ready(kube.get("pod", name)), timeout=180)
    events = kube.kubectl(
        "get", "events", "--field-selector", f"involvedObject.name={name}", "-o", "json"
    ).stdout
    assert "Liveness probe failed" in events
    release.wait_settled()
