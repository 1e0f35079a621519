"""Launch and steer the controllable fake upstream (devstack.fake_upstream) from tests.

    upstream = start_fake_upstream(tmp_path)
    upstream.fault("status", status=429, retry_after="2", model="fake-model", count=2)
    ...
    assert upstream.attempts("fake-model") == 3
    upstream.stop()

The behaviour language (latency, statuses, resets, stalls, broken streams) is documented in
devstack/fake_upstream/controls.py.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import httpx

from tests.support.processes import ManagedProcess, free_port, wait_http

REPO_ROOT = Path(__file__).resolve().parents[2]


class FakeUpstreamProcess(ManagedProcess):
    def __init__(self, port: int, log_path: Path, argv: list[str], host: str = "127.0.0.1") -> None:
        super().__init__(argv, log_path=log_path, cwd=REPO_ROOT)
        self.port = port
        self.base_url = f"http://{host}:{port}"
        self._client = httpx.Client(base_url=self.base_url, timeout=5.0)

    def control(self, **document: Any) -> dict[str, Any]:
        """POST /_control with `document`; returns the new control snapshot."""
        response = self._client.post("/_control", json=document)
        if response.status_code != 200:
            raise AssertionError(f"fake upstream refused {document}: {response.text}")
        return dict(response.json())

    def fault(self, kind: str, *, model: str | None = None, **fields: Any) -> None:
        """Queue a fault for the next `count` (default 1) matching requests."""
        document: dict[str, Any] = {"fault": {"kind": kind, **fields}}
        if model is not None:
            document["model"] = model
        self.control(**document)

    def clear(self) -> None:
        """Back to start-up behaviour, counters zeroed."""
        self.control(clear=True)

    def stats(self) -> dict[str, Any]:
        return dict(self._client.get("/_stats").json())

    def attempts(self, model: str) -> int:
        """How many chat/embedding requests for `model` reached the upstream."""
        return int(self.stats()["models"].get(model, 0))

    def stop(self, timeout: float = 10.0) -> int | None:
        self._client.close()
        return super().stop(timeout)


def start_fake_upstream(
    work_dir: Path,
    *,
    latency_ms: float = 0.0,
    response_bytes: int | None = None,
    ready_timeout: float = 20.0,
    host: str = "127.0.0.1",
) -> FakeUpstreamProcess:
    """`host` is the address it listens on (the cluster tests use the node's, which pods reach)."""
    port = free_port()
    argv = [sys.executable, "-m", "devstack.fake_upstream", "--host", host, "--port", str(port)]
    argv += ["--latency-ms", str(latency_ms)]
    if response_bytes is not None:
        argv += ["--response-bytes", str(response_bytes)]
    work_dir.mkdir(parents=True, exist_ok=True)
    process = FakeUpstreamProcess(port, work_dir / f"fake-upstream-{port}.log", argv, host)
    try:
        wait_http(f"{process.base_url}/_health", timeout=ready_timeout)
    except TimeoutError:
        process.stop()
        raise AssertionError(f"fake upstream did not start:\n{process.output()[-3000:]}") from None
    return process
