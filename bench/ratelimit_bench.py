"""What sharing the rate-limit count costs per request, against per-process `memory://`.

    .venv/bin/python -m bench.ratelimit_bench [--requests 5000] [--concurrency 1] [--rounds 2]
        [--other-work-us 0]    (make bench-ratelimit)

One request's limiter work is what the LLM routes' dependency does: `check_request`, the
per-address and per-caller windows (limits far above the load, so nothing is refused), then
`--other-work-us` of CPU spin standing for the rest of the request (the full chain costs about
2 ms of CPU per request, bench/RESULTS.md), which sets how often the two workers meet on the
shared file; 0 runs the limiter back to back, its worst case.

For each store, two worker processes (as gunicorn's default two workers) each run an asyncio
loop of `--concurrency` tasks issuing `--requests` requests in all against their own RateLimiter
built from the same URI: for `sqlite://` that is the same file, so the workers contend for it as
they do in a pod; for `redis://` a real redis-server (Debian's) on a loopback port. Printed per
store: the limiter's CPU microseconds per request (process CPU time across each limiter call;
exact at concurrency 1, where nothing else runs in the loop meanwhile),
p50 and p99 of one request's limiter time, and the same minus `memory://` (the added cost).
Rounds alternate the order so drift on a shared machine hits every store alike. Not part of
the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "service"))
sys.path.insert(0, str(ROOT))

from tests.support.redis_server import RedisServer  # noqa: E402

from llm_gateway.ratelimit.limiter import RateLimiter  # noqa: E402

LIMIT = "1000000/minute"


def _busy(seconds: float) -> None:
    """The rest of a request's CPU work (auth, guard, cache, upstream call, logs), as a spin."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


async def _worker_loop(
    uri: str, requests: int, concurrency: int, worker: int, other_work: float
) -> tuple[float, list[float]]:
    limiter = RateLimiter(uri, LIMIT, LIMIT, LIMIT, None)
    await limiter.open()
    latencies: list[float] = []
    cpu = [0.0]
    per_task = requests // concurrency

    async def task(index: int) -> None:
        for n in range(per_task):
            started = time.perf_counter()
            cpu_started = time.process_time()
            # A few hundred distinct clients, as a busy pod sees.
            client = (worker * 7919 + index * 131 + n) % 500
            await limiter.check_request(f"10.0.{client // 256}.{client % 256}", f"user:u{client}")
            cpu[0] += time.process_time() - cpu_started
            latencies.append(time.perf_counter() - started)
            if other_work:
                _busy(other_work)
            await asyncio.sleep(0)

    try:
        await asyncio.gather(*(task(i) for i in range(concurrency)))
    finally:
        await limiter.close()
    return cpu[0], latencies


def _worker(
    uri: str, requests: int, concurrency: int, worker: int, other_work: float, start: Any, out: Any
) -> None:
    start.wait()
    out.put(asyncio.run(_worker_loop(uri, requests, concurrency, worker, other_work)))


def measure(uri: str, requests: int, concurrency: int, other_work: float) -> dict[str, float]:
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    out = context.Queue()
    workers = [
        context.Process(
            target=_worker, args=(uri, requests, concurrency, w, other_work, start, out)
        )
        for w in range(2)
    ]
    for process in workers:
        process.start()
    time.sleep(1.0)  # both imported and waiting
    start.set()
    results = [out.get(timeout=600) for _ in workers]
    for process in workers:
        process.join(timeout=30)
    cpu = sum(r[0] for r in results)
    latencies = sorted(latency for r in results for latency in r[1])
    count = len(latencies)
    return {
        "cpu_us_per_request": cpu / count * 1e6,
        "p50_us": statistics.median(latencies) * 1e6,
        "p99_us": latencies[int(count * 0.99) - 1] * 1e6,
        "requests": count,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=5_000, help="per worker and store")
    parser.add_argument("--concurrency", type=int, default=1, help="tasks per worker")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--other-work-us",
        type=float,
        default=0,
        help="CPU each request spends outside the limiter (0: the limiter back to back)",
    )
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="ratelimit-bench-"))
    redis = RedisServer(workdir / "redis")
    redis.start()
    stores = {
        "memory://": "memory://",
        "sqlite:// (shared file)": f"sqlite://{workdir / 'windows.sqlite3'}",
        "redis:// (loopback)": redis.url,
    }
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in stores}
    try:
        for round_index in range(args.rounds):
            order = list(stores) if round_index % 2 == 0 else list(reversed(stores))
            for name in order:
                runs[name].append(
                    measure(stores[name], args.requests, args.concurrency, args.other_work_us / 1e6)
                )
    finally:
        redis.stop()

    load = os.getloadavg()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; load average {load[0]:.1f}/{load[1]:.1f}; "
        f"2 worker processes x {args.requests} requests x {args.rounds} rounds, "
        f"concurrency {args.concurrency} per worker, {args.other_work_us:g} us of other CPU work "
        "per request; one request = check_request (per-address and per-caller windows)"
    )
    # Each figure is its best (lowest) over the rounds: outside load on a shared machine only
    # ever adds, so the minimum is the estimate least moved by it.
    best = {
        name: {key: min(run[key] for run in store_runs) for key in store_runs[0]}
        for name, store_runs in runs.items()
    }
    base = best["memory://"]
    print()
    print("| store | CPU us/req | p50 us | p99 us | added CPU us/req | added p99 us |")
    print("|---|---|---|---|---|---|")
    for name, run in best.items():
        added_cpu = run["cpu_us_per_request"] - base["cpu_us_per_request"]
        print(
            f"| {name} | {run['cpu_us_per_request']:.1f} | {run['p50_us']:.1f} | "
            f"{run['p99_us']:.1f} | {added_cpu:+.1f} | {run['p99_us'] - base['p99_us']:+.1f} |"
        )
    print()
    print("(each figure: its lowest over the rounds; every round is listed below)")
    for name, store_runs in runs.items():
        figures = ", ".join(
            f"{r['cpu_us_per_request']:.1f} us CPU / p99 {r['p99_us']:.0f} us" for r in store_runs
        )
        print(f"- {name}: {figures}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
