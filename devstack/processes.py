"""A child service of the local stack: its own process group, a log file, readiness, clean stop."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx


class ServiceProcess:
    """A long-running child whose output goes to `log_path`.

    It runs in its own session (process group) so that `stop()` also reaps whatever it spawned
    (the LiteLLM proxy's uvicorn, gunicorn workers) and so that a Ctrl-C in the terminal reaches
    only the runner, which then stops children in order.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        url: str,
        log_path: Path,
        env: Mapping[str, str],
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.url = url
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("ab")
        self.started_at = time.monotonic()
        self.ready_seconds: float | None = None  # measured by wait_ready
        self.proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            self.argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, path: str, timeout: float = 90.0) -> float:
        """Poll GET url+path until 200; return seconds since start. RuntimeError on exit/timeout."""
        if self.ready_seconds is not None and self.running():
            return self.ready_seconds  # already proven ready; keep the measured boot time
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.probe(client, path):
                    assert self.ready_seconds is not None
                    return self.ready_seconds
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready within {timeout}s; see {self.log_path}")

    def probe(self, client: httpx.Client, path: str) -> bool:
        """One GET url+path: True (and `ready_seconds` set) on 200. RuntimeError if it exited."""
        if self.proc.poll() is not None:
            raise RuntimeError(
                f"{self.name} exited with status {self.proc.returncode}; "
                f"last output:\n{self.output()[-3000:]}"
            )
        with contextlib.suppress(httpx.HTTPError):
            if client.get(self.url + path).status_code == 200:
                self.ready_seconds = time.monotonic() - self.started_at
                return True
        return False

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM the group, wait up to `timeout`, then SIGKILL whatever is left."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=timeout)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc.returncode is None:
            self.proc.wait(timeout=5)
        if not self._log.closed:
            self._log.close()
        return self.proc.returncode
