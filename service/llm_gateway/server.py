"""The gunicorn worker and the uvicorn server inside it, with a drain phase before exit.

Stock uvicorn, on SIGTERM, closes its listeners and waits for open connections. We put a drain
phase first: readiness turns 503, requests on connections opened before it are still served but
answered with Connection: close, in-flight requests and streams finish (bounded by
UVICORN_GRACEFUL_TIMEOUT), and only then does uvicorn close its listeners and run the lifespan
shutdown (flush, close clients); work arriving after that is refused with 503. The whole drain stays
below gunicorn's graceful_timeout, so gunicorn never has to SIGKILL a worker mid-flush.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
import time
from types import FrameType
from typing import Any

import uvicorn
from gunicorn.arbiter import Arbiter
from uvicorn_worker import UvicornWorker

from llm_gateway.api.deps import started_services
from llm_gateway.drain_state import DrainController
from llm_gateway.settings import load_settings

DRAIN_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})


def find_drain(app: Any) -> DrainController | None:
    # None until the lifespan has started the app: before that nothing is served to drain.
    services = started_services(app)
    return services.drain if services is not None else None


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, *, drain_timeout: float) -> None:
        super().__init__(config)
        self.drain_timeout = drain_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain_task: asyncio.Task[None] | None = None

    async def serve(self, sockets: Any = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets=sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        drain = find_drain(self.config.app)
        first_signal = self._drain_task is None and not self.should_exit
        if drain is None or self._loop is None or sig not in DRAIN_SIGNALS or not first_signal:
            # A second signal (or no app to drain) falls back to uvicorn: close now.
            super().handle_exit(sig, frame)
            return
        name = signal.Signals(sig).name
        # Signal handlers run between bytecodes; hand the work to the loop at once.
        self._loop.call_soon_threadsafe(self._start_drain, drain, name)

    def _start_drain(self, drain: DrainController, signal_name: str) -> None:
        if self._drain_task is None:
            self._drain_task = asyncio.ensure_future(self._drain_then_exit(drain, signal_name))

    async def _drain_then_exit(self, drain: DrainController, signal_name: str) -> None:
        started = time.monotonic()
        await drain.drain(signal_name, self.drain_timeout)
        # Whatever is left of the budget bounds uvicorn's own wait for connections.
        remaining = self.drain_timeout - (time.monotonic() - started)
        # uvicorn annotates this as int but only ever passes it to asyncio.wait_for.
        self.config.timeout_graceful_shutdown = max(0.5, remaining)  # type: ignore[assignment]
        self.should_exit = True


def listening_sockets(listeners: list[Any]) -> list[socket.socket]:
    """The `socket.socket` inside each of gunicorn's listener wrappers.

    uvloop takes over a socket handed to `create_server`: libuv closes the descriptor when the
    server closes, then uvloop detaches a `socket.socket` (its descriptor becomes -1, nothing is
    closed twice) but calls `close()` on any other object, expecting EBADF. gunicorn's wrapper
    (`gunicorn.sock.BaseSocket`) is such an object, and its `close()` logs the EBADF as "Error
    while closing socket [Errno 9] Bad file descriptor", once per worker at every shutdown. Handed
    the real socket, uvloop detaches it and uvicorn's own `close()` afterwards is a no-op.
    """
    return [getattr(listener, "sock", listener) for listener in listeners]


class GatewayUvicornWorker(UvicornWorker):  # type: ignore[misc]
    """gunicorn worker class: uvloop + httptools, our drain, no duplicate access log."""

    CONFIG_KWARGS: dict[str, Any] = {
        "loop": "uvloop",
        "http": "httptools",
        "lifespan": "on",
        "access_log": False,
        "server_header": False,
        # Client addresses are resolved by the app from TRUSTED_PROXIES, not by uvicorn.
        "proxy_headers": False,
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # The same Settings the master validated in gunicorn_conf (the worker inherits its
        # environment), so UVICORN_GRACEFUL_TIMEOUT has one parser and one default.
        self.uvicorn_graceful_timeout = load_settings().uvicorn_graceful_timeout
        self.CONFIG_KWARGS = {
            **type(self).CONFIG_KWARGS,
            "timeout_graceful_shutdown": self.uvicorn_graceful_timeout,
        }
        super().__init__(*args, **kwargs)

    async def _serve(self) -> None:
        self.config.app = self.wsgi
        server = DrainingServer(self.config, drain_timeout=self.uvicorn_graceful_timeout)
        self._install_sigquit_handler()
        await server.serve(sockets=listening_sockets(self.sockets))
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
