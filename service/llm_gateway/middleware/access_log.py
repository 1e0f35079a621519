"""One JSON access-log line and the HTTP metrics for every request."""

from __future__ import annotations

import logging
import time

from prometheus_client import Counter, Histogram

from llm_gateway.client_address import ClientAddressResolver
from llm_gateway.middleware.asgi import ASGIApp, Message, Receive, Scope, Send
from llm_gateway.observability.metrics import Metrics
from llm_gateway.probes import PROBE_PATHS

log = logging.getLogger("llm_gateway.access")

# Probes and scrapes arrive every few seconds from every kubelet and Prometheus; logging them
# would bury real traffic. They still count in metrics.
QUIET_PATHS = frozenset(PROBE_PATHS)


class AccessLogMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics | None,
        client_address: ClientAddressResolver,
        enabled: bool = True,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.client_address = client_address
        self.enabled = enabled
        # Label children by label values: `labels()` costs a lock and a tuple build per call.
        # Routes are templates and statuses few, so these stay small.
        self._counted: dict[tuple[str, str, str], Counter] = {}
        self._timed: dict[tuple[str, str], Histogram] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_capturing_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        metrics = self.metrics
        if metrics is not None:
            metrics.http_in_flight.inc()
        try:
            await self.app(scope, receive, send_capturing_status)
        finally:
            duration = time.perf_counter() - started
            route = scope.get("route")
            route_path = getattr(route, "path", None) or "unmatched"
            if metrics is not None:
                metrics.http_in_flight.dec()
                self._request_counter(metrics, scope["method"], route_path, status).inc()
                self._latency_histogram(metrics, scope["method"], route_path).observe(duration)
            path = scope["path"]
            if self.enabled and path not in QUIET_PATHS:
                state = scope.get("state", {})
                log.info(
                    "http_request",
                    extra={
                        "method": scope["method"],
                        "path": path,
                        "route": route_path,
                        "status": status,
                        "duration_ms": round(duration * 1000, 3),
                        "client": self.client_address.resolve(scope),
                        "user": state.get("user"),
                    },
                )

    def _request_counter(self, metrics: Metrics, method: str, route: str, status: int) -> Counter:
        key = (method, route, str(status))
        child = self._counted.get(key)
        if child is None:
            child = self._counted[key] = metrics.http_requests.labels(*key)
        return child

    def _latency_histogram(self, metrics: Metrics, method: str, route: str) -> Histogram:
        key = (method, route)
        child = self._timed.get(key)
        if child is None:
            child = self._timed[key] = metrics.http_latency.labels(*key)
        return child
