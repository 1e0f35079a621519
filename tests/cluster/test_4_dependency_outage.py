"""LiteLLM scaled to 0: the gateway pods stay live and Ready (no restarts), callers get the
documented 502/503 with an incident id within the deadline; scaled back to 1, calls succeed again
without any gateway restart."""

from __future__ import annotations

import time

import httpx

from tests.cluster.conftest import Release, login
from tests.cluster.kube import restarts, wait_for

# The gateway's own per-request budget (REQUEST_TIMEOUT, 60 s by default) bounds every answer.
DEADLINE_SECONDS = 60.0


def ask(url: str, token: str) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = httpx.post(
        f"{url}/llm/generate",
        headers={"Authorization": f"Bearer {token}"},
        json={"prompt": f"outage check {time.time_ns()}", "model": "mock-gpt"},
        timeout=DEADLINE_SECONDS + 30,
    )
    return response, time.monotonic() - started


def test_litellm_outage_and_recovery_without_gateway_restarts(release: Release) -> None:
    kube = release.kube
    litellm = f"deployment/{release.name}-litellm"
    url = release.service_url()
    token = login(url)
    before = {p["metadata"]["name"]: restarts(p) for p in release.gateway_pods()}
    assert ask(url, token)[0].status_code == 200

    kube.kubectl("scale", litellm, "--replicas=0")
    try:
        wait_for(
            "LiteLLM's pods to be gone",
            lambda: (
                not kube.pods(
                    f"app.kubernetes.io/instance={release.name},app.kubernetes.io/name=litellm"
                )
            ),
            timeout=120,
        )
        for _ in range(3):
            response, elapsed = ask(url, token)
            assert response.status_code in (502, 503), response.text
            body = response.json()
            assert body["incident_id"].startswith("inc_"), body
            assert elapsed < DEADLINE_SECONDS, f"answered after {elapsed:.1f} s"
        assert httpx.get(f"{url}/livez", timeout=5).status_code == 200
    finally:
        kube.kubectl("scale", litellm, "--replicas=1")
    kube.kubectl("rollout", "status", litellm, "--timeout=600s", timeout=660)
    wait_for("calls to succeed again", lambda: ask(url, token)[0].status_code == 200, timeout=180)
    after = {p["metadata"]["name"]: restarts(p) for p in release.gateway_pods()}
    assert after == before, "no gateway pod was restarted or replaced by the outage"
