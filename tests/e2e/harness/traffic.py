"""Client traffic through the Service during a rollout: steady LLM calls, long calls, SSE streams.

- steady: `rate` POST /llm/generate per second, launched on a fixed schedule (not one after the
  other, so slow answers do not lower the rate), each counted by its outcome;
- cheap: `cheap_rate` GET /health per second on the same schedule (no upstream work: it adds
  connections and routing decisions that a 2-core machine could not afford as LLM calls);
- long: `long_loops` clients that each keep one slow call in flight, back to back;
- streams: `stream_loops` clients that each keep one SSE stream (/v1/chat/completions with
  stream: true) open, back to back; a stream counts as complete only if it ends with
  `data: [DONE]` and carried no error event.
Long and stream clients start `spread` seconds apart in all (pass the call's duration): clients
that start together stay in step, and a whole wave could then miss the moment that matters
(e.g. every call of a pod finishing just before its SIGTERM).
`stop()` stops starting new work, waits for everything in flight, and returns the report.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import httpx

OK = "ok"
DONE_LINE = "data: [DONE]"


@dataclass
class TrafficReport:
    steady: collections.Counter[int | str] = field(default_factory=collections.Counter)
    cheap: collections.Counter[int | str] = field(default_factory=collections.Counter)
    long: collections.Counter[int | str] = field(default_factory=collections.Counter)
    streams: collections.Counter[int | str] = field(default_factory=collections.Counter)
    steady_seconds: list[float] = field(default_factory=list)
    long_seconds: list[float] = field(default_factory=list)
    stream_seconds: list[float] = field(default_factory=list)
    duration: float = 0.0  # from start() until everything in flight had finished
    load_seconds: float = 0.0  # from start() until stop(): the time new work was started

    def failed(self) -> int:
        return sum(
            count
            for counter in (self.steady, self.cheap, self.long, self.streams)
            for outcome, count in counter.items()
            if outcome != OK
        )

    def summary(self) -> str:
        def pct(values: list[float], q: float) -> float:
            ordered = sorted(values)
            return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0

        def rate(counter: collections.Counter[int | str]) -> float:
            return sum(counter.values()) / self.load_seconds if self.load_seconds else 0.0

        return (
            f"LLM calls {dict(self.steady)} ({rate(self.steady):.1f}/s, p50 "
            f"{pct(self.steady_seconds, 0.5):.3f} s, p99 {pct(self.steady_seconds, 0.99):.3f} s)"
            f"; /health {dict(self.cheap)} ({rate(self.cheap):.1f}/s); long {dict(self.long)} "
            f"({min(self.long_seconds, default=0):.1f}-{max(self.long_seconds, default=0):.1f} s)"
            f"; streams {dict(self.streams)} ({min(self.stream_seconds, default=0):.1f}-"
            f"{max(self.stream_seconds, default=0):.1f} s); over {self.duration:.1f} s"
        )


def _outcome(exc: BaseException) -> str:
    return type(exc).__name__


class Traffic:
    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        rate: float,
        steady_model: str,
        cheap_rate: float = 0.0,
        long_model: str | None = None,
        long_loops: int = 0,
        stream_model: str | None = None,
        stream_loops: int = 0,
        long_spread: float = 0.0,
        stream_spread: float = 0.0,
        timeout: float = 60.0,
    ) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            limits=httpx.Limits(max_connections=500, max_keepalive_connections=100),
        )
        self._rate = rate
        self._cheap_rate = cheap_rate
        self._steady_model = steady_model
        self._long_model = long_model
        self._long_loops = long_loops if long_model else 0
        self._stream_model = stream_model
        self._stream_loops = stream_loops if stream_model else 0
        self._long_spread = long_spread
        self._stream_spread = stream_spread
        self._stop = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        self._calls: set[asyncio.Task[None]] = set()
        self._started_at = 0.0
        self.report = TrafficReport()

    async def start(self) -> None:
        self._started_at = time.monotonic()
        self._loops.append(asyncio.create_task(self._paced(self._rate, self._one_steady)))
        if self._cheap_rate > 0:
            self._loops.append(asyncio.create_task(self._paced(self._cheap_rate, self._one_cheap)))
        for number in range(self._long_loops):
            self._loops.append(asyncio.create_task(self._long(number)))
        for number in range(self._stream_loops):
            self._loops.append(asyncio.create_task(self._stream(number)))

    async def stop(self) -> TrafficReport:
        self._stop.set()
        self.report.load_seconds = time.monotonic() - self._started_at
        await asyncio.gather(*self._loops)
        await asyncio.gather(*self._calls)
        self.report.duration = time.monotonic() - self._started_at
        await self._client.aclose()
        return self.report

    # ---- the three kinds of client ---------------------------------------------------------

    async def _paced(self, rate: float, call: Callable[[int], Coroutine[Any, Any, None]]) -> None:
        interval = 1 / rate
        next_at = time.monotonic()
        number = 0
        while not self._stop.is_set():
            task = asyncio.create_task(call(number))
            self._calls.add(task)
            task.add_done_callback(self._calls.discard)
            number += 1
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    async def _one_steady(self, number: int) -> None:
        started = time.monotonic()
        body = {"prompt": f"steady call {number}", "model": self._steady_model}
        try:
            response = await self._client.post("/llm/generate", json=body)
        except httpx.HTTPError as exc:
            self.report.steady[_outcome(exc)] += 1
            return
        ok = response.status_code == 200 and bool(response.json().get("response"))
        self.report.steady[OK if ok else response.status_code] += 1
        self.report.steady_seconds.append(time.monotonic() - started)

    async def _one_cheap(self, number: int) -> None:
        try:
            response = await self._client.get("/health")
        except httpx.HTTPError as exc:
            self.report.cheap[_outcome(exc)] += 1
            return
        self.report.cheap[OK if response.status_code == 200 else response.status_code] += 1

    async def _staggered(self, loop: int, loops: int, spread: float) -> None:
        delay = spread * loop / max(loops, 1)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), delay)

    async def _long(self, loop: int) -> None:
        await self._staggered(loop, self._long_loops, self._long_spread)
        number = 0
        while not self._stop.is_set():
            started = time.monotonic()
            body = {"prompt": f"long call {loop}.{number}", "model": self._long_model}
            number += 1
            try:
                response = await self._client.post("/llm/generate", json=body)
            except httpx.HTTPError as exc:
                self.report.long[_outcome(exc)] += 1
                continue
            ok = response.status_code == 200 and bool(response.json().get("response"))
            self.report.long[OK if ok else response.status_code] += 1
            self.report.long_seconds.append(time.monotonic() - started)

    async def _stream(self, loop: int) -> None:
        await self._staggered(loop, self._stream_loops, self._stream_spread)
        number = 0
        while not self._stop.is_set():
            started = time.monotonic()
            body = {
                "model": self._stream_model,
                "stream": True,
                "messages": [{"role": "user", "content": f"stream {loop}.{number}"}],
            }
            number += 1
            try:
                outcome = await self._read_stream(body)
            except httpx.HTTPError as exc:
                outcome = _outcome(exc)
            self.report.streams[outcome] += 1
            if outcome == OK:
                self.report.stream_seconds.append(time.monotonic() - started)

    async def _read_stream(self, body: dict[str, object]) -> int | str:
        async with self._client.stream("POST", "/v1/chat/completions", json=body) as response:
            if response.status_code != 200:
                await response.aread()
                return response.status_code
            lines = [line async for line in response.aiter_lines() if line.strip()]
        if any(line.startswith("event: error") or '"error"' in line for line in lines):
            return "error_event"
        if not lines or lines[-1].strip() != DONE_LINE:
            return "no_done"
        if sum(line.startswith("data: {") for line in lines) < 2:
            return "too_few_chunks"
        return OK
