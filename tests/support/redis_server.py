"""A real redis-server (Debian's package) on a free loopback port, stopped, paused and restarted
by the tests with real signals.

`make test` installs the package when it is missing (mk/stack.mk); the server is never started
as a system service: each test that needs one starts its own here and stops it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import redis

from tests.support.processes import ManagedProcess, free_port


def redis_server_binary() -> str:
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )
    if found is None:
        raise RuntimeError("redis-server is not installed: `make test` installs it (mk/stack.mk)")
    return found


class RedisServer:
    def __init__(
        self, workdir: Path, port: int | None = None, *, password: str | None = None
    ) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.password = password
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: ManagedProcess | None = None
        self._starts = 0

    def start(self, timeout: float = 15.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._starts += 1
        argv = [
            redis_server_binary(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.workdir),
            "--daemonize", "no",
            *(["--requirepass", self.password] if self.password else []),
        ]  # fmt: skip
        self._process = ManagedProcess(
            argv, log_path=self.workdir / f"redis-{self._starts}.log", env=dict(os.environ)
        )
        deadline = time.monotonic() + timeout
        client = redis.Redis(
            port=self.port, password=self.password, socket_timeout=1, socket_connect_timeout=1
        )
        try:
            while True:
                try:
                    if client.ping():
                        return
                except redis.RedisError:
                    if self._process.proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(
                            f"redis-server did not start:\n{self._process.output()[-2000:]}"
                        ) from None
                    time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.stop(timeout=10)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """SIGSTOP: the server keeps its sockets but answers nothing (a slow, hung Redis)."""
        assert self._process is not None
        os.kill(self._process.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(self._process.pid, signal.SIGCONT)

    def keys(self, pattern: str = "*") -> list[bytes]:
        client = redis.Redis(port=self.port, password=self.password, socket_timeout=2)
        try:
            return list(client.keys(pattern))
        finally:
            client.close()


@contextlib.contextmanager
def running_redis(workdir: Path) -> Iterator[RedisServer]:
    server = RedisServer(workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()
