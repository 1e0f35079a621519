"""Bad configuration on the real cluster: refused by the chart before anything is created, or,
when only the running service can tell (a Secret the user manages), a new pod that never becomes
Ready and says why in one line, while the old ReplicaSet keeps serving."""

from __future__ import annotations

import json
import time

import httpx

from tests.cluster.conftest import GATEWAY_SELECTOR, Release, login
from tests.cluster.kube import CHART, Kube, ready

BAD_SECRET = "llm-gateway-placeholder-jwt"
OBSERVE_SECONDS = 45


def test_a_release_without_a_jwt_secret_source_is_refused(kube: Kube) -> None:
    result = kube.helm(
        "install", "no-secret", str(CHART), "--namespace", "no-secret-test", check=False
    )
    assert result.returncode != 0
    assert "jwtSecretKey" in result.stderr or "existingSecret" in result.stderr, result.stderr
    listed = kube.helm("list", "--all-namespaces", "-q").stdout.split()
    assert "no-secret" not in listed


def test_a_secret_that_fails_validation_keeps_the_old_pods_serving(release: Release) -> None:
    kube = release.kube
    kube.kubectl(
        "create", "secret", "generic", BAD_SECRET, "--from-literal=jwt_secret_key=changeme"
    )
    old = {p["metadata"]["name"] for p in release.gateway_pods()}
    url = release.service_url()
    token = login(url)
    try:
        release.upgrade("--set", f"secrets.existingSecret={BAD_SECRET}", wait=False)
        deadline = time.monotonic() + OBSERVE_SECONDS
        new_seen: set[str] = set()
        while time.monotonic() < deadline:
            pods = kube.pods(f"{GATEWAY_SELECTOR},app.kubernetes.io/instance={release.name}")
            new = [p for p in pods if p["metadata"]["name"] not in old]
            new_seen.update(p["metadata"]["name"] for p in new)
            assert not any(ready(p) for p in new), "a pod with a bad secret became Ready"
            assert sum(ready(p) for p in pods if p["metadata"]["name"] in old) == 2
            response = httpx.get(
                f"{url}/auth/me", headers={"Authorization": f"Bearer {token}"}, timeout=10
            )
            assert response.status_code == 200, response.text
            time.sleep(2)
        assert new_seen, "the rollout started a new pod"
        pod = sorted(new_seen)[0]
        logs = kube.logs(pod, "--all-containers") + kube.logs(pod, "--previous")
        lines = [
            line
            for line in logs.splitlines()
            if "JWT_SECRET_KEY" in line or "jwt_secret_key" in line
        ]
        assert lines, f"no line names the bad setting:\n{logs[-2000:]}"
        assert len({line for line in lines}) <= 2, lines  # one line per attempt, not a traceback
        assert "Traceback" not in logs
    finally:
        release.upgrade()
        release.wait_settled()
        kube.kubectl("delete", "secret", BAD_SECRET, check=False)
    status = json.loads(kube.helm("status", release.name, "-o", "json").stdout)
    assert status["info"]["status"] == "deployed"
