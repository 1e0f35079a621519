"""The production process model for real: gunicorn, two uvicorn workers, SIGTERM, JSON lines."""

from __future__ import annotations

import asyncio
import collections
import re
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.support.gateway_process import start_gateway
from tests.support.logs import parse_json_lines

pytestmark = pytest.mark.integration

LONG_REQUEST_SECONDS = 3.0


async def _poll_readiness(base_url: str, stop: asyncio.Event) -> list[int | str]:
    seen: list[int | str] = []
    while not stop.is_set():
        try:
            async with httpx.AsyncClient(timeout=1) as client:
                seen.append((await client.get(f"{base_url}/readyz")).status_code)
        except httpx.TransportError as exc:
            seen.append(type(exc).__name__)
        await asyncio.sleep(0.05)
    return seen


async def test_sigterm_finishes_in_flight_requests_and_exits_zero(tmp_path: Path) -> None:
    gateway = start_gateway(tmp_path)
    try:
        limits = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:
            long_requests = [
                asyncio.create_task(
                    client.get(
                        f"{gateway.base_url}/test/slow",
                        params={"seconds": LONG_REQUEST_SECONDS},
                    )
                )
                for _ in range(6)
            ]
            await asyncio.sleep(0.7)
            stop_polling = asyncio.Event()
            poller = asyncio.create_task(_poll_readiness(gateway.base_url, stop_polling))
            signalled_at = time.monotonic()
            gateway.signal(signal.SIGTERM)
            responses = await asyncio.gather(*long_requests)
            stop_polling.set()
            readiness = await poller
        exit_code = await asyncio.to_thread(gateway.wait, 30)
        exited_after = time.monotonic() - signalled_at
    finally:
        gateway.stop()

    assert [r.status_code for r in responses] == [200] * 6
    assert 503 in readiness, readiness
    assert 200 not in readiness, readiness
    assert exit_code == 0
    assert exited_after < 30, "gunicorn's graceful timeout would have killed the workers"

    records = parse_json_lines(gateway.output())
    by_pid: dict[int, list[str]] = collections.defaultdict(list)
    for record in records:
        by_pid[record["pid"]].append(record["message"])
    worker_stories = [m for m in by_pid.values() if "shutdown_signal_received" in m]
    assert len(worker_stories) == 2
    for story in worker_stories:
        expected = [
            "shutdown_signal_received",
            "waiting_for_in_flight_requests",
            "in_flight_requests_drained",
            "clients_closed",
            "graceful_shutdown_completed",
        ]
        assert [m for m in story if m in expected] == expected, story
    completions = [r for r in records if r["message"] == "in_flight_request_completed"]
    assert len(completions) == 6
    shutdown = [r for r in records if r["message"] == "graceful_shutdown_completed"]
    assert all(r["duration_seconds"] < 25 for r in shutdown)
    # uvloop closes the listening descriptor itself; a worker handing it gunicorn's socket
    # wrapper logged "Error while closing socket [Errno 9] Bad file descriptor" at every exit.
    socket_errors = [r["message"] for r in records if "closing socket" in r["message"]]
    assert socket_errors == []


async def test_every_line_is_json_including_gunicorn_uvicorn_and_errors(tmp_path: Path) -> None:
    gateway = start_gateway(tmp_path, ENVIRONMENT="development", JWT_SECRET_KEY=None)
    try:
        async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as client:
            crash = await client.get("/test/crash")
            await client.get("/livez")
        gateway.signal(signal.SIGTERM)
        assert gateway.wait(30) == 0
    finally:
        gateway.stop()
    records = parse_json_lines(gateway.output())
    loggers = {r["logger"] for r in records}
    assert {"gunicorn.error", "uvicorn.error", "llm_gateway.access"} <= loggers
    for record in records:
        assert {"timestamp", "level", "logger", "message", "service", "pid"} <= record.keys()
    (error,) = [r for r in records if r["message"] == "unhandled_exception"]
    assert error["incident_id"] == crash.json()["incident_id"]
    assert "Traceback" in error["exception"]
    # Announced once by the master, which hands the key to both workers.
    assert [r["message"] for r in records].count("development_jwt_secret_generated") == 1
    configuration = next(r for r in records if r["message"] == "configuration_loaded")
    assert configuration["settings"]["jwt_secret_key"] == "<set>"


async def test_metrics_are_merged_across_workers(tmp_path: Path) -> None:
    gateway = start_gateway(tmp_path)
    try:
        limits = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10, limits=limits) as c:
            for _ in range(5):
                batch = [c.get("/test/slow", params={"seconds": 0.2}) for _ in range(8)]
                assert {r.status_code for r in await asyncio.gather(*batch)} == {200}
            scrapes = [(await c.get("/metrics")).text for _ in range(6)]
    finally:
        gateway.stop()
    served_by = {
        r["pid"] for r in parse_json_lines(gateway.output()) if r["message"] == "http_request"
    }
    assert len(served_by) == 2, "both workers must have served for this test to mean anything"
    pattern = re.compile(
        r'^http_requests_total\{method="GET",route="/test/slow",status="200"\} (\S+)$', re.M
    )
    counts = {float(pattern.search(text).group(1)) for text in scrapes}  # type: ignore[union-attr]
    assert counts == {40.0}, "every worker answers a scrape with the merged total"
