"""An asyncio HTTP load generator that runs in its own process and prints exact latency figures.

    .venv/bin/python -m bench.loadgen --spec spec.json --out result.json

The spec is one JSON object:

    {"url": "http://127.0.0.1:8000/llm/generate", "method": "POST",
     "headers": {"Authorization": "Bearer ..."},
     "body": "{\"prompt\": \"question __N__\"}",   # __N__ -> a unique id per request
     "concurrency": 64, "duration": 8.0,            # or "requests": 2000
     "rate": null,                                  # requests/s: open loop instead of closed
     "warmup": 1.0, "stream": false, "cpu": 1, "count_header": "x-cache", "timeout": 30}

Closed loop (default): `concurrency` workers each send the next request as soon as the previous
one is answered. Open loop (`rate`): requests start on a fixed schedule and latency is measured
from the scheduled start, so a stalled server is not hidden (no coordinated omission).

Latencies are kept as an exact list (fine up to a few 100k samples) rather than an HDR
histogram: exact percentiles, no bucket error. Errors are counted by kind (`http_503`,
exception class name, `stream_incomplete`). Streams record time to first chunk and the gaps
between chunks as well as the total time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

MARKER = "__N__"
QUANTILE_STEPS = 200  # the distribution shipped for plots: every 0.5 %


def percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))
    return ordered[index]


def summarise(samples: list[float]) -> dict[str, Any]:
    ordered = sorted(samples)
    if not ordered:
        return {"count": 0}
    return {
        "count": len(ordered),
        "min": ordered[0],
        "mean": sum(ordered) / len(ordered),
        "p50": percentile(ordered, 0.50),
        "p90": percentile(ordered, 0.90),
        "p99": percentile(ordered, 0.99),
        "p999": percentile(ordered, 0.999),
        "max": ordered[-1],
        "quantiles": [percentile(ordered, i / QUANTILE_STEPS) for i in range(QUANTILE_STEPS + 1)],
    }


@dataclass
class Recorder:
    measuring: bool = False
    latencies_ms: list[float] = field(default_factory=list)
    ttft_ms: list[float] = field(default_factory=list)
    chunk_gaps_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    header_values: Counter[str] = field(default_factory=Counter)
    sent: int = 0

    def error(self, kind: str) -> None:
        if self.measuring:
            self.errors[kind] += 1


class Load:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.url: str = spec["url"]
        self.method: str = spec.get("method", "POST")
        self.headers: dict[str, str] = dict(spec.get("headers") or {})
        self.body: str | None = spec.get("body")
        if self.body is not None:
            self.headers.setdefault("Content-Type", "application/json")
        self.stream: bool = bool(spec.get("stream", False))
        self.count_header: str | None = spec.get("count_header")
        self.run_id = uuid.uuid4().hex[:10]  # a fresh run never hits a previous run's cache
        self.counter = 0
        self.recorder = Recorder()

    def next_body(self) -> bytes | None:
        if self.body is None:
            return None
        self.counter += 1
        return self.body.replace(MARKER, f"{self.run_id}-{self.counter}").encode()

    async def one(self, session: aiohttp.ClientSession, started: float) -> None:
        recorder = self.recorder
        measuring = recorder.measuring
        try:
            async with session.request(
                self.method, self.url, data=self.next_body(), headers=self.headers
            ) as response:
                if self.stream and response.status == 200:
                    complete = await self._read_stream(response, started, measuring)
                else:
                    await response.read()
                    complete = True
                if self.count_header and measuring:
                    recorder.header_values[response.headers.get(self.count_header, "-")] += 1
                if response.status >= 400:
                    recorder.error(f"http_{response.status}")
                    return
                if not complete:
                    recorder.error("stream_incomplete")
                    return
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            recorder.error(type(exc).__name__)
            return
        if measuring:
            recorder.latencies_ms.append((time.perf_counter() - started) * 1000)

    async def _read_stream(
        self, response: aiohttp.ClientResponse, started: float, measuring: bool
    ) -> bool:
        first: float | None = None
        previous: float | None = None
        gaps: list[float] = []
        done = False
        async for line in response.content:
            if not line.startswith(b"data:"):
                continue
            now = time.perf_counter()
            if line.strip() == b"data: [DONE]":
                done = True
                continue
            if first is None:
                first = now
            elif previous is not None:
                gaps.append((now - previous) * 1000)
            previous = now
        if measuring and first is not None and done:
            self.recorder.ttft_ms.append((first - started) * 1000)
            self.recorder.chunk_gaps_ms.extend(gaps)
        return done


async def closed_loop(load: Load, session: aiohttp.ClientSession, spec: dict[str, Any]) -> float:
    concurrency = int(spec.get("concurrency", 1))
    warmup = float(spec.get("warmup", 0.0))
    duration = spec.get("duration")
    total = spec.get("requests")
    begin = time.perf_counter()
    deadline = begin + warmup + float(duration) if duration is not None else None
    measure_from = begin + warmup
    measured_start: list[float] = []

    async def worker() -> None:
        while True:
            now = time.perf_counter()
            if not load.recorder.measuring and now >= measure_from:
                load.recorder.measuring = True
                measured_start.append(now)
            if deadline is not None and now >= deadline:
                return
            if total is not None and load.recorder.measuring:
                if load.recorder.sent >= int(total):
                    return
                load.recorder.sent += 1
            await load.one(session, now)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - (measured_start[0] if measured_start else begin)


async def open_loop(load: Load, session: aiohttp.ClientSession, spec: dict[str, Any]) -> float:
    rate = float(spec["rate"])
    duration = float(spec.get("duration") or 10.0)
    limit = asyncio.Semaphore(int(spec.get("concurrency", 1024)))
    load.recorder.measuring = True
    begin = time.perf_counter()
    tasks: set[asyncio.Task[None]] = set()

    async def scheduled(at: float) -> None:
        async with limit:
            await load.one(session, at)  # latency from the scheduled start

    index = 0
    while True:
        at = begin + index / rate
        if at - begin >= duration:
            break
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(scheduled(at))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        index += 1
    if tasks:
        await asyncio.gather(*tasks)
    return time.perf_counter() - begin


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    load = Load(spec)
    connector = aiohttp.TCPConnector(limit=int(spec.get("concurrency", 1)) + 8, ttl_dns_cache=None)
    timeout = aiohttp.ClientTimeout(total=float(spec.get("timeout", 30.0)))
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        if spec.get("rate"):
            elapsed = await open_loop(load, session, spec)
        else:
            elapsed = await closed_loop(load, session, spec)
    recorder = load.recorder
    ok = len(recorder.latencies_ms)
    failed = sum(recorder.errors.values())
    result: dict[str, Any] = {
        "concurrency": int(spec.get("concurrency", 1)),
        "rate": spec.get("rate"),
        "elapsed_s": elapsed,
        "ok": ok,
        "errors": dict(recorder.errors),
        "error_rate": failed / (ok + failed) if ok + failed else 0.0,
        "rps": ok / elapsed if elapsed > 0 else 0.0,
        # Every request sent, warm-up included: what the server's CPU time is divided by.
        "requests_sent": load.counter,
        "latency_ms": summarise(recorder.latencies_ms),
        "headers": dict(recorder.header_values),
    }
    if spec.get("raw"):  # every measured latency, for a caller that pools several runs
        result["latencies_raw_ms"] = recorder.latencies_ms
    if load.stream:
        result["ttft_ms"] = summarise(recorder.ttft_ms)
        result["chunk_gap_ms"] = summarise(recorder.chunk_gaps_ms)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen")
    parser.add_argument("--spec", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    spec = json.loads(args.spec.read_text())
    cpu = spec.get("cpu")
    if cpu is not None and hasattr(os, "sched_setaffinity") and cpu < (os.cpu_count() or 1):
        os.sched_setaffinity(0, {int(cpu)})
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(run(spec))
    else:
        result = uvloop.run(run(spec))
    args.out.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
