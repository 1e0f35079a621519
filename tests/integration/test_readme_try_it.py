"""README's first ten minutes, for real: `make run` on moved ports, then the "Try it" sequence.

The stack is the one a newcomer gets: `make run` (devstack) with the real LiteLLM proxy on the
shipped config (offline mock models), the real MLflow server, and the gateway under gunicorn with
its default two workers, each request on a fresh connection as curl makes it. The default ports
are held busy by this test while it runs (or already are), so the overrides are what makes it
work. Ctrl-C (SIGINT to the terminal's process group) stops it, as README says.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from devstack.run import PROGRESS_EVERY

# Booting the whole stack as a user does (the proxy's imports, MLflow's first migrations, two
# gunicorn workers) takes one to two minutes on a busy 2-core machine, before any test runs.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PORTS = (8000, 4000, 5000)
BANNER_END = "Ctrl-C stops everything."
STACK_START_TIMEOUT = 420.0
ROUNDS = 10
README_PROMPT = "Say hello in French"


def free_ports(count: int) -> list[int]:
    """`count` distinct free loopback ports (held open together while picked)."""
    with contextlib.ExitStack() as held:
        ports = []
        for _ in range(count):
            sock = held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
    return ports


def gateway_records(output: str) -> list[dict[str, Any]]:
    """The gateway's JSON log lines among the runner's plain ones."""
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def user_environment(data_dir: Path) -> dict[str, str]:
    """A terminal's environment: no make or test variables leaking into the child make."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MAKE", "MFLAGS", "PYTEST", "UV_PROJECT"))
        and key not in ("PORT", "LITELLM_PORT", "MLFLOW_PORT", "VIRTUAL_ENV", "DATA_DIR")
    }
    env["DATA_DIR"] = str(data_dir)  # keeps the test's data out of the repository's ./data
    return env


@contextlib.contextmanager
def defaults_held_busy() -> Iterator[list[int]]:
    """Listen on every default port that is free (one that is not is busy already)."""
    held: list[socket.socket] = []
    try:
        for port in DEFAULT_PORTS:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.bind(("127.0.0.1", port))
                sock.listen()
                held.append(sock)
            except OSError:
                sock.close()
        yield [sock.getsockname()[1] for sock in held]
    finally:
        for sock in held:
            sock.close()


@dataclass
class MadeStack:
    proc: subprocess.Popen[bytes]
    log_path: Path
    base_url: str

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


def make_run(log_path: Path, data_dir: Path, **ports: int) -> subprocess.Popen[bytes]:
    variables = [f"{name}={value}" for name, value in ports.items()]
    with log_path.open("wb") as log:
        return subprocess.Popen(
            ["make", "--no-print-directory", "run", *variables],
            cwd=REPO_ROOT,
            env=user_environment(data_dir),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the "terminal" we press Ctrl-C in
        )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MadeStack]:
    work = tmp_path_factory.mktemp("make-run")
    log_path = work / "make-run.log"
    with defaults_held_busy():
        port, litellm, mlflow = free_ports(3)
        proc = make_run(
            log_path, work / "data", PORT=port, LITELLM_PORT=litellm, MLFLOW_PORT=mlflow
        )
        made = MadeStack(proc, log_path, f"http://localhost:{port}")
        try:
            deadline = time.monotonic() + STACK_START_TIMEOUT
            while BANNER_END not in made.output():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"make run did not come up:\n{made.output()[-5000:]}")
                time.sleep(0.5)
            yield made
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C
                try:
                    proc.wait(timeout=90)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)


def curl(method: str, url: str, **kwargs: Any) -> httpx.Response:
    """One request on its own connection, as each curl in README makes."""
    with httpx.Client(timeout=60) as client:
        return client.request(method, url, **kwargs)


def ask(stack: MadeStack, token: str, prompt: str) -> httpx.Response:
    response = curl(
        "POST",
        f"{stack.base_url}/llm/generate",
        headers={"Authorization": f"Bearer {token}"},
        json={"prompt": prompt},
    )
    assert response.status_code == 200, response.text
    return response


def log_in(stack: MadeStack) -> str:
    login = curl(
        "POST",
        f"{stack.base_url}/auth/login",
        json={"username": "admin", "password": "dev-password"},
    )
    assert login.status_code == 200, login.text
    token: str = login.json()["access_token"]
    return token


def try_it_once(stack: MadeStack, token: str, prompt: str) -> tuple[str, str]:
    """README's "Try it" after the login, every promise checked; returns the asks' request ids."""
    base = stack.base_url
    auth = {"Authorization": f"Bearer {token}"}

    first = ask(stack, token, prompt)
    assert first.json()["cached"] is False
    assert first.json()["cache_tier"] is None
    assert first.json()["model_requested"] == "smart-router"  # the omitted model: DEFAULT_MODEL
    assert first.json()["response"].startswith("Hello from smart-router")

    second = ask(stack, token, prompt)  # "ask again: answered from the cache"
    assert second.json()["cached"] is True, (first.headers, second.headers)
    assert second.json()["cache_tier"] == "exact"
    assert second.json()["response"] == first.json()["response"]

    models = curl("GET", f"{base}/models", headers=auth)
    assert models.status_code == 200
    assert "smart-router" in models.json()["models"]
    assert curl("GET", f"{base}/health").status_code == 200
    ready = curl("GET", f"{base}/readyz?verbose")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert "checks" in ready.json()
    detailed = curl("GET", f"{base}/health/detailed", headers=auth)
    assert detailed.status_code == 200, detailed.text

    stream = curl(
        "POST",
        f"{base}/v1/chat/completions",
        headers=auth,
        json={
            "model": "smart-router",
            "stream": True,
            "messages": [{"role": "user", "content": "Count to 3"}],
        },
    )
    assert stream.status_code == 200
    assert stream.headers["content-type"].startswith("text/event-stream")
    events = [block for block in stream.text.split("\n\n") if block.strip()]
    assert events[-1] == "data: [DONE]"
    pieces = [orjson.loads(event.removeprefix("data: ")) for event in events[:-1]]
    text = "".join(p["choices"][0]["delta"].get("content") or "" for p in pieces if p["choices"])
    assert text.startswith("Hello from smart-router")
    return first.headers["x-request-id"], second.headers["x-request-id"]


def test_the_readme_try_it_sequence_keeps_every_promise_ten_times_in_a_row(
    stack: MadeStack,
) -> None:
    # One login, as README's shell keeps $TOKEN (logins are limited to 5 a minute per user and
    # address, so logging in again every round would rightly be refused).
    token = log_in(stack)
    rounds = [
        try_it_once(stack, token, README_PROMPT if n == 0 else f"{README_PROMPT} (round {n + 1})")
        for n in range(ROUNDS)
    ]

    # The OpenAI SDK, as README shows it.
    from openai import OpenAI

    client = OpenAI(base_url=f"{stack.base_url}/v1", api_key=token)
    reply = client.chat.completions.create(
        model="smart-router", messages=[{"role": "user", "content": "hi"}]
    )
    assert (reply.choices[0].message.content or "").startswith("Hello from smart-router")

    # Which worker served each ask (access log lines carry the pid and the request id): the
    # repeats must have been answered from the cache by the *other* worker too, or this test
    # did not exercise what it is about.
    worker_of = {
        record["request_id"]: record["pid"]
        for record in gateway_records(stack.output())
        if record.get("message") == "http_request" and record.get("request_id")
    }
    served = [(worker_of[miss], worker_of[hit]) for miss, hit in rounds]
    assert len({pid for pair in served for pid in pair}) == 2, served
    crossed = sum(1 for miss_pid, hit_pid in served if miss_pid != hit_pid)
    assert crossed >= 1, f"every repeat landed on the worker that stored it: {served}"


def test_every_wait_longer_than_the_progress_interval_said_what_it_waited_for(
    stack: MadeStack,
) -> None:
    output = stack.output()
    for part in ("the LiteLLM proxy", "the MLflow server", "the gateway"):
        ready = re.search(rf"\[devstack\] {part} ready in ([0-9.]+)s", output)
        assert ready is not None, output[-3000:]
        if float(ready.group(1)) > PROGRESS_EVERY + 1:
            progress = rf"\[devstack\] \d+s: still waiting for [^\n]*{part} \([^)]+; GET http"
            assert re.search(progress, output), f"no progress line for {part}"


def test_ctrl_c_stops_the_stack_cleanly(stack: MadeStack) -> None:
    os.killpg(stack.proc.pid, signal.SIGINT)
    stack.proc.wait(timeout=90)
    output = stack.output()
    assert "[devstack] stack stopped" in output
    records = gateway_records(output)
    by_pid: dict[int, list[str]] = collections.defaultdict(list)
    for record in records:
        by_pid[record["pid"]].append(record["message"])
    completed = [pid for pid, lines in by_pid.items() if "graceful_shutdown_completed" in lines]
    assert len(completed) == 2  # both workers drained
    assert [r["message"] for r in records if r["level"] in ("ERROR", "CRITICAL")] == []
    assert [r["message"] for r in records if "closing socket" in r["message"]] == []


@pytest.mark.parametrize(
    ("variable", "what"),
    [
        pytest.param("PORT", "the gateway", id="gateway"),
        pytest.param("LITELLM_PORT", "the LiteLLM proxy", id="litellm"),
        pytest.param("MLFLOW_PORT", "the MLflow server", id="mlflow"),
    ],
)
def test_a_busy_port_stops_make_run_at_once_naming_the_variable_that_moves_it(
    tmp_path: Path, variable: str, what: str
) -> None:
    ports = dict(zip(("PORT", "LITELLM_PORT", "MLFLOW_PORT"), free_ports(3), strict=True))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", ports[variable]))
        busy.listen()
        proc = make_run(tmp_path / "make-run.log", tmp_path / "data", **ports)
        proc.wait(timeout=120)
    output = (tmp_path / "make-run.log").read_text()
    assert proc.returncode != 0
    assert f"port {ports[variable]} (for {what}) is already in use" in output
    suggested = re.search(rf"`make run {variable}=(\d+)`", output)
    assert suggested is not None, output
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", int(suggested.group(1))))  # the suggestion is free
    assert "starting" not in output  # nothing was started


def test_make_help_says_how_to_move_the_ports() -> None:
    result = subprocess.run(
        ["make", "--no-print-directory", "help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    plain = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout)
    (line,) = [line for line in plain.splitlines() if line.split()[:1] == ["run"]]
    assert "PORT=" in line and "LITELLM_PORT=" in line and "MLFLOW_PORT=" in line
