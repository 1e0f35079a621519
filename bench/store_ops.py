"""The answer stores' own costs, through the AnswerStore API, same process, same data:
Qdrant Edge (the embedded store) against qdrant-client's local mode (the embedded store before
it; now only the contract tests' stand-in for a server).

    .venv/bin/python -m bench.store_ops [--points 2000]

Per store: wall and CPU µs per point of batched writes (64 a batch, as the write-behind sends
them under load), wall and CPU µs per filtered search (each point's partition holds 1/50 of the
points) and µs per retrieve-by-id. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from llm_gateway.cache.answer_store import AnswerStore
from llm_gateway.cache.edge_store import EdgeStore
from llm_gateway.cache.records import AnswerRecord, PendingPoint
from llm_gateway.cache.store import QdrantStore

DIMENSIONS = 512
BATCH = 64
ANSWER = '{"answer": "' + "x" * 1000 + '"}'  # ~1 KB of JSON, as the mock answers


def points(count: int, rng: np.random.Generator) -> list[PendingPoint]:
    made = []
    for n in range(count):
        record = AnswerRecord(
            key=f"key-{n}",
            scope="shared",
            model="m",
            params_fingerprint=f"p{n % 50}",
            context_fingerprint="c",
            created_at=0.0,
            expires_at=1e12,
            payload=ANSWER,
        )
        vector = rng.standard_normal(DIMENSIONS).astype(np.float32)
        made.append(PendingPoint(str(uuid.uuid5(uuid.NAMESPACE_URL, str(n))), vector, record))
    return made


async def measure(store: AnswerStore, batch: list[PendingPoint]) -> dict[str, float]:
    await store.open()
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        for start in range(0, len(batch), BATCH):
            await store.write(batch[start : start + BATCH], [])
        per_point = 1e6 / len(batch)
        figures = {
            "write_wall_us": (time.perf_counter() - wall) * per_point,
            "write_cpu_us": (time.process_time() - cpu) * per_point,
        }
        probes = batch[:200]
        wall, cpu = time.perf_counter(), time.process_time()
        for point in probes:
            await store.search(
                point.vector.tolist(),
                scope="shared",
                model="m",
                params_fingerprint=point.record.params_fingerprint,
                context_fingerprint="c",
                now=1.0,
                threshold=0.9,
            )
        figures["search_us"] = (time.perf_counter() - wall) * 1e6 / len(probes)
        figures["search_cpu_us"] = (time.process_time() - cpu) * 1e6 / len(probes)
        wall = time.perf_counter()
        for point in probes:
            await store.get(point.point_id)
        figures["get_us"] = (time.perf_counter() - wall) * 1e6 / len(probes)
        return figures
    finally:
        await store.close()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.store_ops")
    parser.add_argument("--points", type=int, default=2000)
    args = parser.parse_args()
    batch = points(args.points, np.random.default_rng(7))
    folder = Path(tempfile.mkdtemp(prefix="bench-store-ops-"))
    stores: dict[str, AnswerStore] = {
        "Qdrant Edge": EdgeStore(folder / "edge", collection="c", dimensions=DIMENSIONS),
        "qdrant-client local mode": QdrantStore(
            collection="c", dimensions=DIMENSIONS, embedder_name="bench", local_path=folder / "q"
        ),
    }
    out = sys.stdout.write
    out(
        f"{args.points} points of {DIMENSIONS} dimensions, ~1 KB answer each,"
        f" batches of {BATCH}\n\n"
    )
    out(
        "| store | write µs/point (wall) | write µs/point (CPU) | filtered search µs (wall) |"
        " filtered search µs (CPU) | retrieve µs |\n|---|---|---|---|---|---|\n"
    )
    for name, store in stores.items():
        f = asyncio.run(measure(store, batch))
        out(
            f"| {name} | {f['write_wall_us']:.0f} | {f['write_cpu_us']:.0f} |"
            f" {f['search_us']:.0f} | {f['search_cpu_us']:.0f} | {f['get_us']:.0f} |\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
