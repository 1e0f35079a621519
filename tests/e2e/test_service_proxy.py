"""The endpoints emulator and its proxy, with tiny in-process backends (runs in make pytest)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from aiohttp import web

from tests.e2e.harness.endpoints import BACKEND_HEADER, Endpoints, ServiceProxy
from tests.support.processes import free_port

DELAY = 0.1


async def _backend(name: str) -> tuple[web.AppRunner, str]:
    async def who(request: web.Request) -> web.Response:
        return web.Response(text=name)

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for index in range(3):
            await response.write(f"data: {index}\n\n".encode())
            await asyncio.sleep(0.2)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/who", who)
    app.router.add_get("/stream", stream)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"


@pytest.fixture
async def service() -> AsyncIterator[tuple[ServiceProxy, Endpoints, Callable[[str], str]]]:
    endpoints = Endpoints(propagation_delay=DELAY)
    proxy = ServiceProxy(endpoints)
    await proxy.start()
    runners: list[web.AppRunner] = []
    urls: dict[str, str] = {}
    for name in ("a", "b"):
        runner, url = await _backend(name)
        runners.append(runner)
        urls[name] = url
        endpoints.register(name, url)
    yield proxy, endpoints, urls.__getitem__
    await proxy.close()
    for runner in runners:
        await runner.cleanup()


async def _who(client: httpx.AsyncClient, times: int) -> list[str]:
    return [(await client.get("/who")).text for _ in range(times)]


async def test_no_ready_pod_answers_503_and_readiness_lands_after_the_delay(
    service: tuple[ServiceProxy, Endpoints, Callable[[str], str]],
) -> None:
    proxy, endpoints, _ = service
    async with httpx.AsyncClient(base_url=proxy.url) as client:
        endpoints.set_ready("a", True)
        before = await client.get("/who")
        await asyncio.sleep(DELAY * 2)
        after = await client.get("/who")

    assert before.status_code == 503
    assert proxy.stats.no_endpoint == 1
    assert (after.status_code, after.text, after.headers[BACKEND_HEADER]) == (200, "a", "a")


async def test_ready_pods_share_requests_round_robin(
    service: tuple[ServiceProxy, Endpoints, Callable[[str], str]],
) -> None:
    proxy, endpoints, _ = service
    endpoints.set_ready("a", True)
    endpoints.set_ready("b", True)
    await asyncio.sleep(DELAY * 2)
    async with httpx.AsyncClient(base_url=proxy.url) as client:
        answers = await _who(client, 6)

    assert sorted(answers) == ["a", "a", "a", "b", "b", "b"]
    assert proxy.stats.routed == {"a": 3, "b": 3}


async def test_a_removed_pod_keeps_receiving_traffic_until_the_removal_propagates(
    service: tuple[ServiceProxy, Endpoints, Callable[[str], str]],
) -> None:
    proxy, endpoints, _ = service
    endpoints.set_ready("a", True)
    endpoints.set_ready("b", True)
    await asyncio.sleep(DELAY * 2)
    async with httpx.AsyncClient(base_url=proxy.url) as client:
        endpoints.remove("b")
        before = await _who(client, 4)
        await asyncio.sleep(DELAY * 2)
        after = await _who(client, 4)

    assert "b" in before
    assert after == ["a"] * 4
    assert [change for _, pod, change in endpoints.history if pod == "b"][-1] == "removed"


async def test_a_ready_pod_that_refuses_connections_is_a_counted_502() -> None:
    endpoints = Endpoints(propagation_delay=0)
    endpoints.register("dead", f"http://127.0.0.1:{free_port()}")
    proxy = ServiceProxy(endpoints)
    await proxy.start()
    try:
        endpoints.set_ready("dead", True)
        await asyncio.sleep(0.01)
        async with httpx.AsyncClient(base_url=proxy.url) as client:
            response = await client.get("/who")
    finally:
        await proxy.close()

    assert response.status_code == 502
    assert proxy.stats.upstream_errors == 1


async def test_streams_pass_through_chunk_by_chunk(
    service: tuple[ServiceProxy, Endpoints, Callable[[str], str]],
) -> None:
    proxy, endpoints, _ = service
    endpoints.set_ready("a", True)
    await asyncio.sleep(DELAY * 2)
    arrivals: list[float] = []
    chunks: list[str] = []
    async with (
        httpx.AsyncClient(base_url=proxy.url) as client,
        client.stream("GET", "/stream") as response,
    ):
        started = time.monotonic()
        async for chunk in response.aiter_text():
            arrivals.append(time.monotonic() - started)
            chunks.append(chunk)

    assert "".join(chunks) == "data: 0\n\ndata: 1\n\ndata: 2\n\n"
    assert arrivals[0] < 0.15, "the first event waited for the whole stream"
    assert arrivals[-1] >= 0.35
