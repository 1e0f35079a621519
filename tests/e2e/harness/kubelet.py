"""A kubelet emulator for one pod: probes, restarts on liveness failure, and termination.

What it does, as the kubelet does (and what it simplifies):
- The startup probe gates the other two; until it succeeds the pod is neither live-checked nor
  Ready. `failureThreshold` consecutive startup or liveness failures kill the container (preStop,
  SIGTERM, SIGKILL after the grace period) and start it again (no CrashLoopBackOff delay here).
- Readiness runs at its period with its thresholds and keeps running while the pod terminates;
  liveness and startup stop when termination begins. The first readiness probe runs as soon as
  the startup probe has succeeded (the real kubelet may wait up to one period).
- Termination: mark terminating, tell the endpoints (which apply it after their propagation
  delay), run preStop (native sleep: the kubelet waits; exec: run in the container), SIGTERM,
  then SIGKILL once the grace period is spent (at least 2 s after a preStop overran it, as the
  kubelet grants). Every step is timestamped in `TerminationRecord`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from tests.e2e.harness.container import CommandResult
from tests.e2e.harness.pod import HttpProbe, PodSpec

# After preStop has used up the grace period the kubelet still allows this long after SIGTERM.
MIN_GRACE_AFTER_PRESTOP = 2.0


class Runtime(Protocol):
    """What the kubelet needs from a container (PodContainer implements it)."""

    spec: PodSpec

    def record(self, name: str) -> float: ...
    def url(self, port: int | str = "http", path: str = "") -> str: ...
    async def start(self) -> None: ...
    async def restart(self) -> None: ...
    async def kill(self, signal: str) -> None: ...
    async def wait_exit(self, timeout: float) -> int | None: ...
    async def exec(self, command: Sequence[str], timeout: float = 60) -> CommandResult: ...


class EndpointsListener(Protocol):
    """The endpoints controller's view of a pod (Endpoints implements it)."""

    def set_ready(self, pod: str, ready: bool) -> None: ...
    def remove(self, pod: str) -> None: ...


Prober = Callable[[str, float], Awaitable[bool]]


class HttpProber:
    """Kubernetes' httpGet rule: any status from 200 to 399 within the timeout is a success.

    One client per kubelet (building one costs ~0.1 s here), without keep-alive: the kubelet
    opens a fresh connection for every probe, so a stuck accept queue shows as a failure.
    """

    def __init__(self) -> None:
        self._client: httpx.AsyncClient | None = None

    async def __call__(self, url: str, timeout: float) -> bool:
        if self._client is None:
            self._client = httpx.AsyncClient(
                limits=httpx.Limits(max_keepalive_connections=0), trust_env=False
            )
        try:
            response = await self._client.get(url, timeout=timeout)
        except httpx.HTTPError:
            return False
        return 200 <= response.status_code < 400

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


@dataclass
class TerminationRecord:
    requested_at: float
    prestop_started_at: float | None = None
    prestop_finished_at: float | None = None
    sigterm_at: float | None = None
    sigkill_at: float | None = None
    exited_at: float | None = None
    exit_code: int | None = None

    @property
    def seconds_to_exit(self) -> float:
        assert self.exited_at is not None, "the container has not exited"
        return self.exited_at - self.requested_at

    @property
    def seconds_after_sigterm(self) -> float:
        assert self.exited_at is not None and self.sigterm_at is not None
        return self.exited_at - self.sigterm_at


class Kubelet:
    def __init__(
        self,
        runtime: Runtime,
        *,
        prober: Prober | None = None,
        endpoints: EndpointsListener | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.runtime = runtime
        self.spec = runtime.spec
        self._own_prober = HttpProber() if prober is None else None
        self._prober: Prober = prober or self._own_prober  # type: ignore[assignment]
        self._endpoints = endpoints
        self._sleep = sleep
        self._clock = clock
        self.started = False
        self.ready = False
        self.terminating = False
        self.restarts = 0
        self.container_started_at = clock()
        self.terminations: list[TerminationRecord] = []
        self.loop_failures: list[BaseException] = []
        self._ready_changed = asyncio.Event()
        self._lifecycle_tasks: set[asyncio.Task[None]] = set()  # startup, liveness
        self._readiness_task: asyncio.Task[None] | None = None

    @property
    def pod(self) -> str:
        return self.spec.name

    # ---- running -------------------------------------------------------------------------

    async def run(self) -> None:
        """Start the container and the probe loops; returns at once (see `wait_ready`)."""
        await self.runtime.start()
        self.container_started_at = self._clock()
        self._spawn(self._startup_loop())

    async def wait_ready(self, timeout: float) -> float:
        """Seconds from the latest container start until Ready.

        Raises AssertionError naming what happened (events, a crashed probe loop) on timeout.
        """
        try:
            async with asyncio.timeout(timeout):
                while not self.ready:
                    self._raise_loop_failure()
                    self._ready_changed.clear()
                    await self._ready_changed.wait()
        except TimeoutError:
            self._raise_loop_failure()
            events = [(e.name, round(e.at - self.container_started_at, 2)) for e in self._events()]
            raise AssertionError(
                f"pod {self.pod} not Ready within {timeout}s; events: {events}"
            ) from None
        return self._clock() - self.container_started_at

    def _events(self) -> list[Any]:
        return list(getattr(self.runtime, "events", []))

    def _raise_loop_failure(self) -> None:
        if self.loop_failures:
            raise AssertionError(f"a probe loop of {self.pod} crashed") from self.loop_failures[0]

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coroutine)
        self._lifecycle_tasks.add(task)
        task.add_done_callback(self._lifecycle_tasks.discard)
        task.add_done_callback(self._keep_failure)
        return task

    def _keep_failure(self, task: asyncio.Task[None]) -> None:
        # A crashed loop would otherwise vanish silently and look like a pod that never gets Ready.
        if not task.cancelled() and task.exception() is not None:
            self.loop_failures.append(task.exception())  # type: ignore[arg-type]
            self._ready_changed.set()

    async def _probe(self, probe: HttpProbe) -> bool:
        url = self.runtime.url(probe.port, probe.path)
        try:
            async with asyncio.timeout(probe.timeout_seconds + 1):
                return await self._prober(url, probe.timeout_seconds)
        except TimeoutError:
            return False

    def _set_ready(self, ready: bool) -> None:
        if ready == self.ready:
            return
        self.ready = ready
        self.runtime.record("ready" if ready else "unready")
        self._ready_changed.set()
        if self._endpoints is not None:
            self._endpoints.set_ready(self.pod, ready)

    async def _startup_loop(self) -> None:
        probe = self.spec.startup_probe
        if probe is not None:
            await self._sleep(probe.initial_delay_seconds)
            failures = 0
            while not await self._probe(probe):
                failures += 1
                if failures >= probe.failure_threshold:
                    self.runtime.record("startup_probe_failed")
                    self._spawn(self._restart_container())
                    return
                await self._sleep(probe.period_seconds)
        self.started = True
        self.runtime.record("started")
        if self.spec.liveness_probe is not None:
            self._spawn(self._liveness_loop(self.spec.liveness_probe))
        if self.spec.readiness_probe is None:
            self._set_ready(True)
        elif self._readiness_task is None or self._readiness_task.done():
            self._readiness_task = asyncio.ensure_future(
                self._readiness_loop(self.spec.readiness_probe)
            )
            self._readiness_task.add_done_callback(self._keep_failure)

    async def _liveness_loop(self, probe: HttpProbe) -> None:
        await self._sleep(probe.initial_delay_seconds)
        failures = 0
        while not self.terminating:
            failures = 0 if await self._probe(probe) else failures + 1
            if failures >= probe.failure_threshold:
                self.runtime.record("liveness_probe_failed")
                self._spawn(self._restart_container())
                return
            await self._sleep(probe.period_seconds)

    async def _readiness_loop(self, probe: HttpProbe) -> None:
        await self._sleep(probe.initial_delay_seconds)
        successes = failures = 0
        while True:
            if await self._probe(probe):
                successes, failures = successes + 1, 0
                if successes >= probe.success_threshold and self.started:
                    self._set_ready(True)
            else:
                successes, failures = 0, failures + 1
                if failures >= probe.failure_threshold:
                    self._set_ready(False)
            await self._sleep(probe.period_seconds)

    # ---- stopping ------------------------------------------------------------------------

    async def _kill_container(self, grace: float, record: TerminationRecord) -> None:
        deadline = record.requested_at + grace
        pre_stop = self.spec.pre_stop
        if pre_stop is not None:
            record.prestop_started_at = self.runtime.record("prestop_started")
            if pre_stop.kind == "sleep":
                await self._sleep(min(pre_stop.seconds, grace))
            else:
                with contextlib.suppress(Exception):
                    await self.runtime.exec(pre_stop.command, timeout=max(grace, 0.1))
            record.prestop_finished_at = self.runtime.record("prestop_finished")
        record.sigterm_at = self.runtime.record("sigterm_sent")
        await self.runtime.kill("TERM")
        remaining = deadline - self._clock()
        overran = pre_stop is not None and (
            remaining <= 0 or (pre_stop.kind == "sleep" and pre_stop.seconds >= grace)
        )
        if overran:
            remaining = max(remaining, MIN_GRACE_AFTER_PRESTOP)
        code = await self.runtime.wait_exit(remaining)
        if code is None:
            record.sigkill_at = self.runtime.record("sigkill_sent")
            await self.runtime.kill("KILL")
            code = await self.runtime.wait_exit(30)
        record.exit_code = code
        record.exited_at = self._clock()

    async def _restart_container(self) -> None:
        """Liveness/startup failure: kill with the pod's grace period, then start again."""
        self.started = False
        self._set_ready(False)
        record = TerminationRecord(requested_at=self.runtime.record("container_killing"))
        await self._kill_container(self.spec.termination_grace_period_seconds, record)
        self.terminations.append(record)
        if self.terminating:
            return
        self.restarts += 1
        await self.runtime.restart()
        self.container_started_at = self._clock()
        self._spawn(self._startup_loop())

    async def terminate(self, grace_period: float | None = None) -> TerminationRecord:
        """Delete the pod: endpoints removal (delayed), preStop, SIGTERM, SIGKILL at deadline."""
        grace = self.spec.termination_grace_period_seconds if grace_period is None else grace_period
        record = TerminationRecord(requested_at=self.runtime.record("terminating"))
        self.terminating = True
        await self._cancel(self._lifecycle_tasks)
        if self._endpoints is not None:
            self._endpoints.remove(self.pod)
        await self._kill_container(grace, record)
        self.terminations.append(record)
        await self.stop_probing()
        return record

    async def stop_probing(self) -> None:
        tasks = set(self._lifecycle_tasks)
        if self._readiness_task is not None:
            tasks.add(self._readiness_task)
        await self._cancel(tasks)
        self.ready = False
        if self._own_prober is not None:
            await self._own_prober.aclose()

    @staticmethod
    async def _cancel(tasks: set[asyncio.Task[None]]) -> None:
        current = asyncio.current_task()
        pending = [task for task in tasks if task is not current and not task.done()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
