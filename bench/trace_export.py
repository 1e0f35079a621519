"""Traces/s one gateway worker exports to MLflow: sqlite vs Postgres backends, side by side.

    .venv/bin/python -m bench.trace_export                         # both backends, every shape
    .venv/bin/python -m bench.trace_export --backend sqlite --traces 600
    .venv/bin/python -m bench.trace_export --url http://127.0.0.1:5000   # an existing server

One `mlflow server --workers N` per backend (its own venv; Postgres is Debian's, started on a free
loopback port by devstack.postgres), then the gateway's own `MlflowExporter` uploads fresh records
in each shape (batch size x uploads in flight). Shapes rotate across rounds and backends, so a burst
of outside load on the shared machine hits them all alike. Also prints the exporter's CPU per trace
(this process's user+system time; the gateway worker pays the same in its export threads) and the
server's (every process of MLflow's and of Postgres's process trees): what a trace costs the
tracking server, which is what bounds traces/s when the server shares the gateway's machine.
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import statistics
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from devstack.mlflow import ensure_mlflow_venv, start_mlflow_server
from devstack.postgres import PostgresServer, find_postgres_bin
from devstack.venvs import repo_root

from bench.stack import free_port, process_tree_cpu_seconds
from llm_gateway.tracking.mlflow_export import MlflowExporter
from llm_gateway.tracking.records import TraceRecord, now_ns

SHAPES = ((1, 1), (100, 1), (100, 2), (100, 4))  # (batch size, uploads in flight)
EXPERIMENT = "bench-trace-export"


@dataclass
class Figure:
    traces_per_s: list[float]
    cpu_ms_per_trace: list[float]
    server_cpu_ms_per_trace: list[float]


def make_records(count: int, tag: str) -> list[TraceRecord]:
    start = now_ns()
    return [
        TraceRecord(
            request_id=f"bench-{tag}-{n}",
            user="bench",
            endpoint="chat_completions",
            model_requested="mock-fast",
            model_used="mock-fast",
            inputs={"messages": [{"role": "user", "content": f"question {n} " * 8}]},
            outputs=f"answer {n} " * 8,
            prompt_tokens=20,
            completion_tokens=20,
            total_tokens=40,
            started_at_ns=start + n,
            ended_at_ns=start + n + 5_000_000,
        )
        for n in range(count)
    ]


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(
    exporter: MlflowExporter,
    records: list[TraceRecord],
    batch: int,
    inflight: int,
    server_roots: list[int],
) -> tuple[float, float, float]:
    """(traces/s, exporter CPU ms per trace, server CPU ms per trace: MLflow and its database)"""
    batches = [records[i : i + batch] for i in range(0, len(records), batch)]
    server0 = sum(process_tree_cpu_seconds(g) for g in server_roots)
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    with ThreadPoolExecutor(inflight) as pool:
        for _ in pool.map(exporter.export, batches):
            pass
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    server = sum(process_tree_cpu_seconds(g) for g in server_roots) - server0
    return len(records) / wall, cpu / len(records) * 1000, server / len(records) * 1000


@contextlib.contextmanager
def mlflow_on(backend: str, work: Path, workers: int) -> Iterator[tuple[str, list[int]]]:
    """The server's url and the pids whose process trees spend its CPU (MLflow, Postgres)."""
    venv = ensure_mlflow_venv(repo_root())
    with contextlib.ExitStack() as stack:
        store_uri = None
        database_pids = []
        if backend == "postgres":
            pg = PostgresServer(find_postgres_bin(), work / "pg", free_port(), work / "pg.log")
            pg.start()
            stack.callback(pg.stop)
            store_uri = pg.create_database("mlflow")
            database_pids.append(pg.proc.pid)
        server = start_mlflow_server(
            venv,
            free_port(),
            work / f"mlflow-{backend}",
            work / f"mlflow-{backend}.log",
            backend_store_uri=store_uri,
            workers=1 if backend == "sqlite" else workers,
        )
        stack.callback(server.stop)
        server.wait_ready(timeout=300)
        yield server.url, [server.pid, *database_pids]


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.trace_export")
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--url", help="measure this running server instead of starting one")
    parser.add_argument("--traces", type=int, default=400, help="records per shape and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mlflow-workers", type=int, default=2)
    args = parser.parse_args()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    if args.url:
        backends = [args.url]
    figures: dict[tuple[str, int, int], Figure] = {}
    with (
        tempfile.TemporaryDirectory(prefix="bench-trace-export-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        servers = {
            b: (b, [])
            if args.url
            else stack.enter_context(mlflow_on(b, Path(tmp), args.mlflow_workers))
            for b in backends
        }
        exporters = {
            b: MlflowExporter(url, EXPERIMENT, timeout=30) for b, (url, _) in servers.items()
        }
        for b, exporter in exporters.items():
            exporter.export(make_records(20, f"warm-{b}"))  # experiment, imports, connections
        for round_no in range(args.rounds):
            for batch, inflight in SHAPES:
                for b, exporter in exporters.items():
                    # batch 1 is ~100x slower: fewer records keep a round short.
                    count = args.traces if batch > 1 else max(20, args.traces // 10)
                    rate, cpu, server_cpu = measure(
                        exporter,
                        make_records(count, f"{b}-{round_no}-{batch}-{inflight}"),
                        batch,
                        inflight,
                        servers[b][1],
                    )
                    fig = figures.setdefault((b, batch, inflight), Figure([], [], []))
                    fig.traces_per_s.append(rate)
                    fig.cpu_ms_per_trace.append(cpu)
                    fig.server_cpu_ms_per_trace.append(server_cpu)
        for exporter in exporters.values():
            exporter.close()
    print(
        f"\nMLflow server workers: sqlite 1 (one writer), postgres {args.mlflow_workers}; "
        f"{args.rounds} rounds, shapes interleaved"
    )
    print(
        f"{'backend':<10} {'batch':>5} {'in flight':>9} "
        f"{'traces/s (median, min-max)':>28} {'exporter CPU ms/trace':>22} "
        f"{'server CPU ms/trace':>20}"
    )
    for (b, batch, inflight), fig in figures.items():
        rates = fig.traces_per_s
        print(
            f"{b:<10} {batch:>5} {inflight:>9} "
            f"{statistics.median(rates):>12.1f} ({min(rates):.1f}-{max(rates):.1f}){'':>4} "
            f"{statistics.median(fig.cpu_ms_per_trace):>22.3f} "
            f"{statistics.median(fig.server_cpu_ms_per_trace):>20.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
