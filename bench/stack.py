"""The processes a benchmark run measures: the mock upstream, the LiteLLM proxy, gateways.

Every server process is started under `taskset -c <SERVER_CPU>` (and so are the workers it
forks); the load generator pins itself to LOADGEN_CPU. On this 2-core machine that is core 0
for every server and core 1 for the client, so the client never steals the server's CPU.
The LiteLLM proxy's venv and argv come from devstack.litellm (never the service's .venv).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
from devstack.litellm import PROXY_ENV, READY_PATH, ensure_litellm_venv, proxy_argv
from devstack.litellm_config import fake_upstream_config, write_config
from devstack.processes import ServiceProcess
from devstack.venvs import clean_env

ROOT = Path(__file__).resolve().parents[1]
SERVER_CPU = 0
LOADGEN_CPU = 1
JWT_SECRET = "bench-signing-key-0123456789abcdef-0123456789"  # loopback only, never shipped
LITELLM_KEY = "sk-bench-" + secrets.token_hex(16)  # fresh per run; the proxy needs one
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
BENCH_USER = "bench"
BENCH_PASSWORD = "bench-password-not-secret"  # a throwaway local account

# The full chain: everything optional on, limits far above what the load can reach.
FULL_CHAIN: dict[str, str] = {
    "CACHE_ENABLED": "true",
    "SEMANTIC_CACHE_ENABLED": "true",
    "TRACKING_ENABLED": "true",  # no MLFLOW_TRACKING_URI: traces go to the local journal
    "RATE_LIMIT_ENABLED": "true",
    "RATE_LIMIT_USER": "100000000/minute",
    "RATE_LIMIT_IP": "100000000/minute",
    "GUARD_ENABLED": "true",
    "TRACING_ENABLED": "true",
    "ACCESS_LOG_ENABLED": "true",
    "METRICS_ENABLED": "true",
}
# The floor: every optional layer off (JWT verification cannot be switched off).
FLOOR: dict[str, str] = {
    "CACHE_ENABLED": "false",
    "SEMANTIC_CACHE_ENABLED": "false",
    "TRACKING_ENABLED": "false",
    "RATE_LIMIT_ENABLED": "false",
    "GUARD_ENABLED": "false",
    "TRACING_ENABLED": "false",
    "ACCESS_LOG_ENABLED": "false",
    "METRICS_ENABLED": "false",
}


def pinned(argv: list[str]) -> list[str]:
    taskset = shutil.which("taskset")
    if taskset is None or (os.cpu_count() or 1) < 2:
        return argv
    return [taskset, "-c", str(SERVER_CPU), *argv]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mb(pid: int) -> float:
    """Resident set size of one process from /proc (Linux), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def rss_split_mb(pid: int) -> tuple[float, float]:
    """(anonymous, file-backed) resident memory of one process, in MiB. File-backed pages (an
    mmap'd write-ahead log, shared libraries) are clean page cache the kernel can reclaim; only
    anonymous memory growing without end is a leak."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("RssAnon", "RssFile", "RssShmem"):
            fields[name] = int(value.split()[0]) / 1024
    return fields["RssAnon"], fields["RssFile"] + fields.get("RssShmem", 0.0)


def _proc_stats() -> dict[int, list[str]]:
    """Every live process's /proc stat fields after the command name (Linux), by pid."""
    stats: dict[int, list[str]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The command name may contain spaces and parentheses: fields start after the last ')'.
            stats[int(stat.parent.name)] = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited while we looked
    return stats


def process_tree(root: int, stats: dict[int, list[str]] | None = None) -> list[int]:
    """A live process and all its live descendants. By ancestry, not process group:
    PostgreSQL's backends each call setsid(), so a group or session holds only the postmaster."""
    stats = _proc_stats() if stats is None else stats
    parent = {pid: int(fields[1]) for pid, fields in stats.items()}  # state, ppid, pgrp, ...
    tree = []
    for pid in stats:
        ancestor = pid
        while ancestor > 1 and ancestor != root:
            ancestor = parent.get(ancestor, 0)
        if ancestor == root:
            tree.append(pid)
    return sorted(tree)


def process_tree_cpu_seconds(root: int) -> float:
    """CPU time (user + system) of a process tree (`process_tree`), from /proc."""
    stats = _proc_stats()
    return sum(
        (int(stats[pid][11]) + int(stats[pid][12])) / CLOCK_TICKS
        for pid in process_tree(root, stats)
    )


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) one process has used so far, from /proc (Linux)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def cpu_seconds_when_idle(pids: list[int], timeout: float = 20.0) -> float:
    """The processes' total CPU seconds once they have gone quiet: work deferred past the load
    (the cache's low-priority store writes, journal appends) belongs to the requests that caused
    it, so a per-request CPU figure is read after it is done. Quiet: at most one clock tick
    (10 ms) in 250 ms, what timers and housekeeping use."""
    deadline = time.monotonic() + timeout
    total = sum(cpu_seconds(pid) for pid in pids)
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = sum(cpu_seconds(pid) for pid in pids)
        if now - total <= 1.5 / CLOCK_TICKS:
            return now
        total = now
    return total


SPEED_PROBE = (
    "import time\n"
    "best = float('inf')\n"
    "for _ in range(5):\n"
    "    started = time.perf_counter()\n"
    "    sum(i * i for i in range(1_000_000))\n"
    "    best = min(best, time.perf_counter() - started)\n"
    "print(best * 1000)\n"
)


def speed_probe_ms() -> float:
    """A fixed pure-Python loop timed on the server core (best of 5, ms): the state of a shared
    machine at that moment, so runs on the same code can be compared (lower is faster)."""
    argv = pinned([sys.executable, "-c", SPEED_PROBE])
    return float(subprocess.run(argv, check=True, capture_output=True, text=True).stdout)


def children(pid: int) -> list[int]:
    return sorted(child for child, fields in _proc_stats().items() if int(fields[1]) == pid)


def start_mock(port: int, logs: Path) -> ServiceProcess:
    argv = [sys.executable, "-m", "devstack.fake_upstream", "--port", str(port)]
    argv += ["--response-bytes", "1024"]
    env = clean_env()
    env["PYTHONPATH"] = str(ROOT)
    process = ServiceProcess(
        "mock", pinned(argv), url=f"http://127.0.0.1:{port}", log_path=logs / "mock.log", env=env
    )
    process.wait_ready("/_health", timeout=30)
    return process


def set_mock(mock_url: str, **controls: Any) -> None:
    response = httpx.post(f"{mock_url}/_control", json=controls, timeout=5)
    response.raise_for_status()


def start_litellm(mock_url: str, port: int, logs: Path) -> ServiceProcess:
    venv = ensure_litellm_venv(ROOT)
    config = write_config(fake_upstream_config(mock_url), logs / "litellm-config.yaml")
    env = clean_env()
    env.update(PROXY_ENV)
    env["LITELLM_MASTER_KEY"] = LITELLM_KEY
    process = ServiceProcess(
        "litellm proxy",
        pinned(proxy_argv(venv, config, port)),
        url=f"http://127.0.0.1:{port}",
        log_path=logs / "litellm.log",
        env=env,
        cwd=config.parent,
    )
    try:
        process.wait_ready(READY_PATH, timeout=180)
    except BaseException:
        process.stop()
        raise
    return process


def password_hash(password: str) -> str:
    out = subprocess.run(
        [str(ROOT / ".venv/bin/llm-gateway"), "hash-password", "--password", password],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip().splitlines()[-1]


class Gateway:
    """One gateway: gunicorn master + `workers` uvicorn workers, started as production does."""

    def __init__(
        self,
        name: str,
        port: int,
        upstream_url: str,
        settings: Mapping[str, str],
        logs: Path,
        users_json: str,
        *,
        workers: int = 1,
    ) -> None:
        self.name = name
        self.url = f"http://127.0.0.1:{port}"
        data_dir = logs / f"{name}-data"
        shutil.rmtree(data_dir, ignore_errors=True)
        env = clean_env()
        env.update(
            {
                "ENVIRONMENT": "production",
                "JWT_SECRET_KEY": JWT_SECRET,
                "LITELLM_BASE_URL": upstream_url,
                "HOST": "127.0.0.1",
                "PORT": str(port),
                "WEB_CONCURRENCY": str(workers),
                "DATA_DIR": str(data_dir),
                "USERS_JSON": users_json,
                "LITELLM_API_KEY": LITELLM_KEY,
                "LOG_LEVEL": "INFO",
                **settings,
            }
        )
        argv = [sys.executable, "-m", "gunicorn", "-c", "python:llm_gateway.gunicorn_conf"]
        argv.append("llm_gateway.app:create_app()")
        self.started = time.monotonic()
        self.process = ServiceProcess(
            f"gateway {name}", pinned(argv), url=self.url, log_path=logs / f"{name}.log", env=env
        )
        self.ready_seconds = self._wait_ready()
        self.token = self.login()

    def _wait_ready(self, timeout: float = 60.0) -> float:
        # Polled every 20 ms so the measured start-to-Ready time is accurate to that.
        deadline = self.started + timeout
        with httpx.Client(timeout=1.0) as client:
            while time.monotonic() < deadline:
                if not self.process.running():
                    raise RuntimeError(f"{self.name} exited:\n{self.process.output()[-3000:]}")
                try:
                    if client.get(f"{self.url}/readyz").status_code == 200:
                        return time.monotonic() - self.started
                except httpx.HTTPError:
                    pass
                time.sleep(0.02)
        self.process.stop()
        raise RuntimeError(f"{self.name} not ready in {timeout}s:\n{self.process.output()[-3000:]}")

    def login(self) -> str:
        response = httpx.post(
            f"{self.url}/auth/login",
            json={"username": BENCH_USER, "password": BENCH_PASSWORD},
            timeout=10,
        )
        response.raise_for_status()
        token: str = response.json()["access_token"]
        return token

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def workers(self) -> list[int]:
        # `taskset` execs gunicorn, so the process we started is the master itself.
        return children(self.process.pid)

    def worker_rss_mb(self) -> list[float]:
        return [rss_mb(pid) for pid in self.workers()]

    def stop(self) -> None:
        self.process.stop(timeout=30)

    def terminate(self) -> None:
        # To the master only, as the kubelet does to PID 1; gunicorn signals its workers.
        os.kill(self.process.pid, signal.SIGTERM)


def users_json() -> str:
    return json.dumps(
        [{"username": BENCH_USER, "password_hash": password_hash(BENCH_PASSWORD), "role": "user"}]
    )
