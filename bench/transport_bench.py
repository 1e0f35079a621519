"""The upstream adapters side by side against a fast local upstream: aiohttp native (the
default) and httpx's own pool. (httpx over httpx-aiohttp's transport, the earlier default, measured
between the two: see bench/RESULTS.md's history.)

    .venv/bin/python bench/transport_bench.py [--requests 3000] [--rounds 2]

Starts a small OpenAI-like aiohttp server in a subprocess (pinned to the last CPU; the load
generator runs on the first), then for each adapter and round: latency p50/p99 at
concurrency 1, requests per second at concurrency 64 and the client's CPU microseconds per
request, for a POST with a ~1 KB JSON body answered by a ~1 KB JSON body. The clients are the
gateway's own adapters behind its `Upstream` port, so the figures price what the service runs.
Rounds alternate the order so drift on a shared machine hits every adapter alike. Not part of
the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "service"))

from llm_gateway.upstream.aiohttp_upstream import AiohttpUpstream
from llm_gateway.upstream.http import HttpxUpstream, build_upstream_http_client
from llm_gateway.upstream.port import Upstream

KINDS = ["aiohttp-native", "httpx-pool"]

REQUEST_BODY = {
    "model": "bench-model",
    "messages": [{"role": "user", "content": "x" * 900}],
    "temperature": 0.2,
}
RESPONSE_BODY = orjson.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "model": "bench-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "y" * 850}}],
        "usage": {"prompt_tokens": 225, "completion_tokens": 212, "total_tokens": 437},
    }
)


def serve(port: int) -> None:
    from aiohttp import web

    async def chat(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=RESPONSE_BODY, content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and cpu < (os.cpu_count() or 1):
        os.sched_setaffinity(0, {cpu})


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def adapter(base_url: str, kind: str) -> Upstream:
    if kind == "aiohttp-native":
        return AiohttpUpstream(base_url, connect_timeout=5, read_timeout=30, max_connections=64)
    return HttpxUpstream(
        build_upstream_http_client(
            base_url, connect_timeout=5, request_timeout=30, max_connections=64
        )
    )


async def measure(base_url: str, kind: str, requests: int) -> dict[str, float]:
    client = adapter(base_url, kind)
    content = orjson.dumps(REQUEST_BODY)

    async def one() -> float:
        started = time.perf_counter()
        headers = {"Content-Type": "application/json", "Authorization": "Bearer sk-bench"}
        response = await client.send("POST", "/v1/chat/completions", content, headers)
        orjson.loads(response.content)
        if response.status != 200:
            raise RuntimeError(f"unexpected status {response.status}")
        return time.perf_counter() - started

    try:
        for _ in range(200):  # warm the pool and the server
            await one()
        latencies = [await one() for _ in range(requests)]

        remaining = requests

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await one()

        started = time.perf_counter()
        cpu_started = time.process_time()
        await asyncio.gather(*(worker() for _ in range(64)))
        rps = requests / (time.perf_counter() - started)
        cpu_us = (time.process_time() - cpu_started) * 1e6 / requests
    finally:
        await client.aclose()
    return {
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "rps_c64": rps,
        "cpu_us": cpu_us,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        pin((os.cpu_count() or 1) - 1)
        serve(args.serve)
        return

    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port)])
    base_url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                httpx.post(f"{base_url}/v1/chat/completions", json=REQUEST_BODY, timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        pin(0)
        try:
            import uvloop

            uvloop.install()
            loop_name = "uvloop"
        except ImportError:
            loop_name = "asyncio"
        rows: list[tuple[int, str, dict[str, float]]] = []
        kinds = KINDS
        for round_number in range(1, args.rounds + 1):
            order = kinds if round_number % 2 else kinds[::-1]
            for kind in order:
                rows.append(
                    (round_number, kind, asyncio.run(measure(base_url, kind, args.requests)))
                )
    finally:
        server.terminate()
        server.wait(timeout=10)

    print(
        f"# upstream transport benchmark: {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, {loop_name}, httpx {httpx.__version__}, "
        f"{args.requests} requests per measurement, ~1 KB request and response"
    )
    print("| round | adapter | c=1 p50 ms | c=1 p99 ms | c=64 RPS | client CPU us/request |")
    print("|---|---|---|---|---|---|")
    for round_number, kind, row in rows:
        print(
            f"| {round_number} | {kind} | {row['p50_ms']:.3f} | {row['p99_ms']:.3f} "
            f"| {row['rps_c64']:.0f} | {row['cpu_us']:.0f} |"
        )
    for kind in kinds:
        best = max(row["rps_c64"] for _, k, row in rows if k == kind)
        p50 = min(row["p50_ms"] for _, k, row in rows if k == kind)
        cpu = min(row["cpu_us"] for _, k, row in rows if k == kind)
        print(f"best {kind}: p50 {p50:.3f} ms, {best:.0f} RPS at c=64, {cpu:.0f} us CPU/request")


if __name__ == "__main__":
    main()
