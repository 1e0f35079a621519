"""The kubelet emulator against an injected fake container (no Docker: runs in `make pytest`).

Periods are scaled down to milliseconds; the rules under test are the kubelet's: startup gates the
other probes, liveness failures restart, termination runs preStop -> SIGTERM -> SIGKILL.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence

import pytest

from tests.e2e.harness.container import CommandResult, Event
from tests.e2e.harness.kubelet import Kubelet
from tests.e2e.harness.pod import HttpProbe, PodSpec, PreStop

PERIOD = 0.01
GRACE = 0.4


def _spec(**changes: object) -> PodSpec:
    spec = PodSpec(
        name="fake-0",
        image="fake",
        command=(),
        args=(),
        env={},
        ports={"http": 8000},
        startup_probe=HttpProbe("/livez", 8000, PERIOD, PERIOD, failure_threshold=50),
        liveness_probe=HttpProbe("/livez", 8000, PERIOD, PERIOD, failure_threshold=3),
        readiness_probe=HttpProbe("/readyz", 8000, PERIOD, PERIOD, failure_threshold=2),
        pre_stop=PreStop(kind="sleep", seconds=0.05),
        termination_grace_period_seconds=GRACE,
        run_as_user=None,
        run_as_group=None,
        fs_group=None,
        read_only_root_filesystem=True,
        drop_capabilities=(),
        allow_privilege_escalation=False,
        volumes=(),
        volume_mounts=(),
    )
    return dataclasses.replace(spec, **changes)  # type: ignore[arg-type]


class FakeContainer:
    """Answers probes from `healthy`; dies on TERM unless `ignores_term`, always on KILL."""

    def __init__(self, spec: PodSpec, ignores_term: bool = False) -> None:
        self.spec = spec
        self.ignores_term = ignores_term
        self.healthy = {"/livez": True, "/readyz": True}
        self.alive = False
        self.starts = 0
        self.events: list[Event] = []
        self.probes: list[tuple[float, str]] = []
        self._exit_code: int | None = None
        self.wait_timeouts: list[float] = []
        self.max_wait = float("inf")  # caps real waiting when a test only checks the request
        self._exited = asyncio.Event()

    def record(self, name: str) -> float:
        at = asyncio.get_running_loop().time()
        self.events.append(Event(name, at))
        return at

    def names(self) -> list[str]:
        return [event.name for event in self.events]

    def url(self, port: int | str = "http", path: str = "") -> str:
        return path

    async def start(self) -> None:
        self.alive, self._exit_code = True, None
        self._exited.clear()
        self.starts += 1
        self.record("container_started")

    restart = start

    async def kill(self, signal: str) -> None:
        self.record(f"signal_{signal}")
        if signal == "KILL" or (signal == "TERM" and not self.ignores_term):
            self.alive, self._exit_code = False, 137 if signal == "KILL" else 0
            self._exited.set()

    async def wait_exit(self, timeout: float) -> int | None:
        self.wait_timeouts.append(timeout)
        try:
            await asyncio.wait_for(self._exited.wait(), min(timeout, self.max_wait))
        except TimeoutError:
            return None
        return self._exit_code

    async def exec(self, command: Sequence[str], timeout: float = 60) -> CommandResult:
        return CommandResult(0, "", "")

    async def probe(self, url: str, timeout: float) -> bool:
        self.probes.append((asyncio.get_running_loop().time(), url))
        return self.alive and self.healthy[url]


class RecordingEndpoints:
    def __init__(self) -> None:
        self.changes: list[tuple[str, str]] = []

    def set_ready(self, pod: str, ready: bool) -> None:
        self.changes.append((pod, "ready" if ready else "not_ready"))

    def remove(self, pod: str) -> None:
        self.changes.append((pod, "removed"))


def _kubelet(container: FakeContainer, endpoints: RecordingEndpoints | None = None) -> Kubelet:
    return Kubelet(container, prober=container.probe, endpoints=endpoints, clock=_loop_time)


def _loop_time() -> float:
    return asyncio.get_running_loop().time()


async def test_startup_probe_gates_readiness_and_liveness() -> None:
    container = FakeContainer(_spec())
    container.healthy["/livez"] = False
    kubelet = _kubelet(container)
    await kubelet.run()
    await asyncio.sleep(PERIOD * 8)

    assert (kubelet.started, kubelet.ready) == (False, False)
    assert {url for _, url in container.probes} == {"/livez"}  # readiness never probed

    container.healthy["/livez"] = True
    await kubelet.wait_ready(1)
    assert (kubelet.started, kubelet.ready) == (True, True)
    await kubelet.stop_probing()


async def test_liveness_failures_restart_the_container_and_take_it_out_of_endpoints() -> None:
    container = FakeContainer(_spec())
    endpoints = RecordingEndpoints()
    kubelet = _kubelet(container, endpoints)
    await kubelet.run()
    await kubelet.wait_ready(1)

    container.healthy["/livez"] = False
    for _ in range(100):
        if container.starts == 2:
            break
        await asyncio.sleep(PERIOD)
    container.healthy["/livez"] = True
    await kubelet.wait_ready(1)
    await kubelet.stop_probing()

    assert kubelet.restarts == 1
    names = container.names()
    killed = names.index("liveness_probe_failed")
    assert names[killed:].index("prestop_started") < names[killed:].index("signal_TERM")
    assert endpoints.changes[:2] == [("fake-0", "ready"), ("fake-0", "not_ready")]
    assert endpoints.changes[-1] == ("fake-0", "ready")
    assert kubelet.terminations[0].exit_code == 0


async def test_termination_runs_pre_stop_then_sigterm_and_keeps_probing_readiness() -> None:
    container = FakeContainer(_spec())
    endpoints = RecordingEndpoints()
    kubelet = _kubelet(container, endpoints)
    await kubelet.run()
    await kubelet.wait_ready(1)

    record = await kubelet.terminate()

    assert record.exit_code == 0
    assert record.sigkill_at is None
    assert record.prestop_started_at is not None and record.prestop_finished_at is not None
    assert record.sigterm_at is not None
    assert record.prestop_finished_at - record.prestop_started_at == pytest.approx(0.05, abs=0.03)
    assert record.requested_at <= record.prestop_started_at <= record.sigterm_at
    assert endpoints.changes[-1] == ("fake-0", "removed")
    during_pre_stop = [
        url for at, url in container.probes if record.requested_at < at < record.sigterm_at
    ]
    assert "/readyz" in during_pre_stop
    assert "/livez" not in during_pre_stop


async def test_a_container_ignoring_sigterm_is_killed_when_the_grace_period_ends() -> None:
    container = FakeContainer(_spec(), ignores_term=True)
    kubelet = _kubelet(container)
    await kubelet.run()
    await kubelet.wait_ready(1)

    record = await kubelet.terminate()

    assert record.exit_code == 137
    assert record.sigkill_at is not None
    assert record.sigkill_at - record.requested_at == pytest.approx(GRACE, abs=0.05)


async def test_a_pre_stop_longer_than_the_grace_period_still_gets_two_seconds_after_sigterm() -> (
    None
):
    container = FakeContainer(_spec(pre_stop=PreStop(kind="sleep", seconds=5)), ignores_term=True)
    kubelet = Kubelet(container, prober=container.probe, sleep=_instant, clock=_loop_time)
    await kubelet.run()
    await kubelet.wait_ready(1)
    container.max_wait = 0.01

    record = await kubelet.terminate(grace_period=0)

    assert container.wait_timeouts[0] == 2.0
    assert record.sigkill_at is not None


async def _instant(seconds: float) -> None:
    await asyncio.sleep(0)
