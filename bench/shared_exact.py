"""What sharing the exact tier between a pod's workers costs, per hit and per miss (issue 17).

    .venv/bin/python -m bench.shared_exact [--entries 4000] [--ops 20000] [--rounds 3]

Before: the exact tier was each worker's in-memory table (lru.py) alone. After: the same table in
front of the pod's SQLite table (cache/shared_exact.py, WAL mode, under DATA_DIR). This prices
what one request's exact tier does in each case, with the service's own classes, on a table
filled to CACHE_MAX_ENTRIES with ~1 KB answers:

- hit, this worker stored it: the table answers (before and after; after adds a queued touch);
- hit, a sibling stored it: before, a miss (the request went upstream); after, a SQLite read, the
  JSON decode, and the answer joining this worker's table;
- miss: before, one dict lookup; after, that plus a SQLite read that finds nothing;
- store (on the miss path, before the response): before, the table's put; after, also one
  SQLite transaction (upsert, bound check, eviction past the bound);
- store and miss while another process stores an answer every millisecond (lock contention).

Each figure is the median and p99 of single-operation timings (perf_counter_ns), in
microseconds, pooled over rounds. Printed, never asserted; not part of the test suite.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from llm_gateway.cache.lru import ExactLru, encode_payload
from llm_gateway.cache.shared_exact import SharedExactTable

TTL = 3600.0


def answer(n: int) -> dict[str, object]:
    text = f"Answer number {n}: " + "lorem ipsum dolor sit amet " * 30
    return {
        "body": {
            "id": f"chatcmpl-{n}",
            "object": "chat.completion",
            "model": "smart-router",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 12, "completion_tokens": 180, "total_tokens": 192},
        },
        "model_used": "smart-router",
        "cost": None,
    }


def key(n: int) -> str:
    return f"{n:064x}"  # the shape of an exact key (sha256 hex)


def timed(op: Callable[[int], object], count: int, offset: int = 0) -> list[float]:
    samples = []
    for i in range(count):
        started = time.perf_counter_ns()
        op(offset + i)
        samples.append((time.perf_counter_ns() - started) / 1000)
    return samples


def hammer(path: str, entries: int, stop_after: float) -> None:
    """Another worker storing an answer every millisecond (over twice what a worker serves at
    full load, bench/RESULTS.md), each write a miss it just answered."""
    table = SharedExactTable(Path(path), max_entries=entries, busy_timeout=0.25)
    table.open(time.time())
    checkpoints = Checkpoints(table)
    body = encode_payload(answer(0))
    deadline = time.monotonic() + stop_after
    n = 0
    while time.monotonic() < deadline:
        now = time.time()
        table.put(key(10_000_000 + n % entries), body, now, now + TTL)
        n += 1
        time.sleep(0.001)
    checkpoints.stop()
    table.close()


class Checkpoints:
    """What ResponseCache does for its table: a checkpoint every second, on another thread,
    when it wrote since the last one."""

    def __init__(self, table: SharedExactTable) -> None:
        self._table = table
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        done = 0
        while not self._stop.wait(1.0):
            if self._table.writes != done:
                done = self._table.writes
                self._table.checkpoint()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def one_round(entries: int, ops: int, work: Path) -> dict[str, list[float]]:
    now = time.time()
    bodies = [encode_payload(answer(n)) for n in range(entries)]
    lru = ExactLru(entries)
    table = SharedExactTable(work, max_entries=entries, busy_timeout=0.25)
    table.open(now)
    sibling = SharedExactTable(work, max_entries=entries, busy_timeout=0.25)
    sibling.open(now)
    for n in range(entries):
        lru.put_body(key(n), bodies[n], now, now + TTL)
        sibling.put(key(n), bodies[n], now, now + TTL)
    sibling.checkpoint()
    checkpoints = Checkpoints(table)
    results: dict[str, list[float]] = {}

    def lru_hit(i: int) -> object:
        return lru.get(key(i % entries), now)

    def lru_hit_and_touch(i: int) -> object:
        found = lru.get(key(i % entries), now)
        table.touch(key(i % entries), now)
        return found

    fresh = ExactLru(entries)  # a worker that has not seen these answers yet

    def shared_hit(i: int) -> object:
        k = key(i % entries)
        if fresh.get(k, now) is not None:
            return None
        row = table.get(k, now)
        assert row is not None
        payload = orjson.loads(row[0])
        table.touch(k, now)
        fresh.put_body(k, row[0], row[1], row[2])
        return payload

    def lru_miss(i: int) -> object:
        return lru.get(key(5_000_000 + i), now)

    def shared_miss(i: int) -> object:
        k = key(5_000_000 + i)
        return lru.get(k, now) or table.get(k, now)

    payloads = [answer(entries + n) for n in range(64)]

    def lru_store(i: int) -> object:
        return lru.put(key(6_000_000 + i), payloads[i % 64], now, now + TTL)

    def shared_store(i: int) -> object:
        k = key(7_000_000 + i)
        body = lru.put(k, payloads[i % 64], now, now + TTL)
        table.put(k, body, now, now + TTL)
        return body

    results["hit, this worker stored it: before (table)"] = timed(lru_hit, ops)
    results["hit, this worker stored it: after (table + touch)"] = timed(lru_hit_and_touch, ops)
    results["hit, a sibling stored it: after (SQLite read + decode + join table)"] = timed(
        shared_hit, min(ops, entries)
    )
    results["miss: before (table)"] = timed(lru_miss, ops)
    results["miss: after (table + SQLite read)"] = timed(shared_miss, ops)
    results["store: before (table put)"] = timed(lru_store, ops)
    results["store: after (table put + SQLite transaction)"] = timed(shared_store, ops)

    writer = multiprocessing.get_context("spawn").Process(
        target=hammer, args=(str(work), entries, 30.0)
    )
    writer.start()
    time.sleep(1.0)  # let it open the file and start writing
    results["store: after, another process writing meanwhile"] = timed(
        shared_store, ops // 4, offset=ops
    )
    results["miss: after, another process writing meanwhile"] = timed(
        shared_miss, ops // 4, offset=ops
    )
    writer.terminate()
    writer.join()
    checkpoints.stop()
    table.close()
    sibling.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.shared_exact")
    parser.add_argument("--entries", type=int, default=4000, help="CACHE_MAX_ENTRIES")
    parser.add_argument("--ops", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    pooled: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="bench-shared-exact-") as work:
            for name, samples in one_round(args.entries, args.ops, Path(work)).items():
                pooled.setdefault(name, []).extend(samples)
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"# exact tier per operation, {args.entries} entries of "
        f"~{len(encode_payload(answer(0)))} B, {args.rounds} rounds; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, load average {load}"
    )
    print(f"{'operation':<72} {'p50 µs':>9} {'p99 µs':>9} {'n':>7}")
    for name, samples in pooled.items():
        samples.sort()
        p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
        print(f"{name:<72} {statistics.median(samples):>9.1f} {p99:>9.1f} {len(samples):>7}")


if __name__ == "__main__":
    main()
