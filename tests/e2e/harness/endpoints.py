"""The endpoints controller and kube-proxy, emulated: a Service that routes only to Ready pods.

`Endpoints` holds the Service's pod list. Changes reported by the kubelet (Ready, not Ready,
terminating) take effect only after `propagation_delay` seconds, as they reach kube-proxy, ingress
controllers and cloud load balancers late in a real cluster. `ServiceProxy` is the data path: an
aiohttp server on a loopback port that forwards each request (streamed bodies included) to the
next eligible pod, round-robin, and counts what happened.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from tests.support.processes import free_port

# Headers that belong to one connection, never forwarded (RFC 9110 section 7.6.1).
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
BACKEND_HEADER = "X-E2E-Pod"


@dataclass
class EndpointState:
    base_url: str
    ready: bool = False
    removed: bool = False


class Endpoints:
    """The Service's endpoints as the proxies see them: every change lands after the delay."""

    def __init__(self, propagation_delay: float = 1.0) -> None:
        self.propagation_delay = propagation_delay
        self._pods: dict[str, EndpointState] = {}
        self.history: list[tuple[float, str, str]] = []  # (loop time, pod, change)

    def register(self, pod: str, base_url: str) -> None:
        self._pods[pod] = EndpointState(base_url)

    def _later(self, pod: str, change: str, apply: bool) -> None:
        loop = asyncio.get_running_loop()

        def applied() -> None:
            state = self._pods.get(pod)
            if state is None:
                return
            if change == "removed":
                state.removed = True
            else:
                state.ready = apply
            self.history.append((loop.time(), pod, change))

        loop.call_later(self.propagation_delay, applied)

    def set_ready(self, pod: str, ready: bool) -> None:
        self._later(pod, "ready" if ready else "not_ready", ready)

    def remove(self, pod: str) -> None:
        self._later(pod, "removed", True)

    def eligible(self) -> list[tuple[str, str]]:
        """(pod, base_url) of every pod the proxies currently route to."""
        return [
            (pod, state.base_url)
            for pod, state in self._pods.items()
            if state.ready and not state.removed
        ]


@dataclass
class ProxyStats:
    routed: collections.Counter[str] = field(default_factory=collections.Counter)
    no_endpoint: int = 0  # requests that found no Ready pod (503 from the proxy)
    upstream_errors: int = 0  # connection refused/reset by the chosen pod (502 or cut stream)


class ServiceProxy:
    """kube-proxy for one Service: `url` is what clients call."""

    def __init__(self, endpoints: Endpoints, timeout: float = 120) -> None:
        self.endpoints = endpoints
        self.stats = ProxyStats()
        self._timeout = timeout
        self._counter = itertools.count()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> str:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self._timeout),
            connector=aiohttp.TCPConnector(limit=0),
            auto_decompress=False,
        )
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self.url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def _pick(self) -> tuple[str, str] | None:
        eligible = self.endpoints.eligible()
        if not eligible:
            return None
        return eligible[next(self._counter) % len(eligible)]

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        chosen = self._pick()
        if chosen is None:
            self.stats.no_endpoint += 1
            return web.Response(status=503, text="no ready endpoints")
        pod, base_url = chosen
        self.stats.routed[pod] += 1
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        body = await request.read()
        response: web.StreamResponse | None = None
        try:
            async with self._session.request(
                request.method,
                base_url + request.rel_url.raw_path_qs,
                headers=headers,
                data=body or None,
                allow_redirects=False,
            ) as upstream:
                response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
                for key, value in upstream.headers.items():
                    if key.lower() not in HOP_BY_HOP:
                        response.headers.add(key, value)
                response.headers[BACKEND_HEADER] = pod
                await response.prepare(request)
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
                return response
        except (TimeoutError, aiohttp.ClientError):
            self.stats.upstream_errors += 1
            if response is None:
                return web.Response(status=502, text=f"upstream {pod} failed")
            # Headers already went out: cut the client's connection, as a reset would.
            if request.transport is not None:
                request.transport.close()
            return response
