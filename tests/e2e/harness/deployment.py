"""Pods from one template, and the rolling update (maxSurge 1, maxUnavailable 0).

`PodFactory.create()` is "a ReplicaSet made a pod": a container with the template's spec, a kubelet
probing it, registered with the Service's endpoints. `rolling_restart` replaces pods one at a time
the way the Deployment controller does with maxSurge 1 / maxUnavailable 0: start a new pod, wait
until it is Ready, then delete an old one (whose termination runs on while the next pod starts).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tests.e2e.harness.container import PodContainer
from tests.e2e.harness.endpoints import Endpoints
from tests.e2e.harness.kubelet import Kubelet, Prober, TerminationRecord
from tests.e2e.harness.pod import PodSpec


@dataclass
class Pod:
    container: PodContainer
    kubelet: Kubelet

    @property
    def name(self) -> str:
        return self.container.spec.name


@dataclass
class PodFactory:
    template: PodSpec
    image: str
    network: str
    workdir: Path
    endpoints: Endpoints | None = None
    env_overrides: Mapping[str, str] = field(default_factory=dict)
    prober: Prober | None = None  # None: each kubelet probes over HTTP
    pods: list[Pod] = field(default_factory=list)
    _numbers: itertools.count[int] = field(default_factory=itertools.count)

    async def create(
        self,
        name: str | None = None,
        *,
        spec: PodSpec | None = None,
        env_overrides: Mapping[str, str] | None = None,
    ) -> Pod:
        """Start a pod (returns at once; `await pod.kubelet.wait_ready(...)` for Ready)."""
        name = name or f"gateway-{next(self._numbers)}"
        template = spec or self.template
        env = dict(template.env)
        if "POD_NAME" in env:  # fieldRef metadata.name follows the pod's own name
            env["POD_NAME"] = name
        pod_spec = dataclasses.replace(template, name=name, env=env)
        container = PodContainer(
            spec=pod_spec,
            workdir=self.workdir,
            network=self.network,
            image=self.image,
            env_overrides={**self.env_overrides, **(env_overrides or {})},
        )
        if self.endpoints is not None:
            port = "http" if "http" in pod_spec.ports else next(iter(pod_spec.ports.values()))
            self.endpoints.register(name, container.url(port))
        kubelet = Kubelet(container, endpoints=self.endpoints, prober=self.prober)
        pod = Pod(container, kubelet)
        self.pods.append(pod)
        await kubelet.run()
        return pod

    async def cleanup(self) -> None:
        for pod in self.pods:
            await pod.kubelet.stop_probing()
            await pod.container.remove()


@dataclass
class Rollout:
    new_pods: list[Pod]
    terminations: dict[str, TerminationRecord]  # old pod name -> what its termination did


async def rolling_restart(
    factory: PodFactory,
    old_pods: list[Pod],
    *,
    ready_timeout: float = 120,
    spec: PodSpec | None = None,
) -> Rollout:
    """Replace every old pod; returns when all old pods have exited and new ones are Ready."""
    new_pods: list[Pod] = []
    terminating: dict[str, asyncio.Task[TerminationRecord]] = {}
    for old in old_pods:
        new = await factory.create(spec=spec)
        await new.kubelet.wait_ready(ready_timeout)
        # maxUnavailable 0: the old pod goes only once its replacement is Ready (and, as the
        # controller waits minReadySeconds=0, at once after that).
        terminating[old.name] = asyncio.ensure_future(old.kubelet.terminate())
        new_pods.append(new)
    records = await asyncio.gather(*terminating.values())
    return Rollout(new_pods, dict(zip(terminating, records, strict=True)))
