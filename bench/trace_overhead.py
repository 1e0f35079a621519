"""What tracing to MLflow costs the request path: tracking on (MLflow up) vs off, one run.

    .venv/bin/python -m bench.trace_overhead [--requests 2000 --concurrency 8 --rounds 3]
    .venv/bin/python -m bench.trace_overhead --latency-only --rate 100

Starts an `mlflow server` (sqlite, its own venv; at nice 19, standing in for MLflow on its own
machine) and bench.otlp_sink (accepts every upload at once, stores nothing), then:

1. CPU: bench.cpu_cost with four variants of the full chain on the 0 ms mock, interleaved round
   by round: `to-mlflow` (tracking on, exporting to that MLflow), `to-sink` (exporting to the
   sink), `tracking-off` (TRACKING_ENABLED=false) and `full` (tracking on without MLflow, every
   trace to the local journal). It prints CPU ms per request of the gateway worker, its export
   threads included.
2. Latency: one gateway worker per variant (`to-mlflow`, `to-sink`, `journal-only`,
   `tracking-off`), all up at once, and for each round and variant in turn: `--latency-requests`
   requests one at a time (c=1), then an open loop at `--rate` requests/s for `--seconds` (well
   under the worker's capacity, so the latency is the request path's, not a queue's). Latencies
   are pooled over the rounds and compared percentile by percentile: tracing must not move the
   request path's p99, since the export runs after the response (a queue put) and uploads in
   worker threads. `to-sink` against `tracking-off` is the gateway's own export work;
   `journal-only` (the same records appended to the local journal, no encoding or upload) splits
   recording from shipping; `to-mlflow` against `to-sink` is what a tracking server on the same
   two cores takes from it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from devstack.mlflow import ensure_mlflow_venv, start_mlflow_server
from devstack.processes import ServiceProcess
from devstack.venvs import clean_env, repo_root

from bench.run import UNIQUE_BODY, loadgen, pooled, prime
from bench.stack import (
    FULL_CHAIN,
    ROOT,
    Gateway,
    free_port,
    process_tree,
    start_mock,
    users_json,
)

PERCENTILES = ("p50", "p90", "p99", "p999")


def latency_rounds(mlflow_url: str, sink_url: str, work: Path, args: argparse.Namespace) -> None:
    mock = start_mock(free_port(), work)
    gateways: dict[str, Gateway] = {}
    try:
        variants = {
            "to-mlflow": {**FULL_CHAIN, "MLFLOW_TRACKING_URI": mlflow_url},
            "to-sink": {**FULL_CHAIN, "MLFLOW_TRACKING_URI": sink_url},
            "journal-only": FULL_CHAIN,
            "tracking-off": {**FULL_CHAIN, "TRACKING_ENABLED": "false"},
        }
        for name, settings in variants.items():
            gateways[name] = Gateway(
                f"gw_{name}", free_port(), mock.url, settings, work, users_json()
            )
            prime(gateways[name].url + "/v1/chat/completions", gateways[name].auth, UNIQUE_BODY)
        runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for _ in range(args.rounds):
            for name, gateway in gateways.items():
                base = {
                    "url": gateway.url + "/v1/chat/completions",
                    "headers": gateway.auth,
                    "body": UNIQUE_BODY,
                    "raw": True,
                }
                shapes = {
                    "c=1": {"concurrency": 1, "requests": args.latency_requests},
                    f"{args.rate:g}/s": {"rate": args.rate, "duration": args.seconds},
                }
                for shape, spec in shapes.items():
                    runs.setdefault((name, shape), []).append(loadgen({**base, **spec}))
        sys.stdout.write(
            f"\nLatency (ms, {args.rounds} rounds interleaved, pooled; the 0 ms mock)\n"
            f"{'variant':<14} {'load':<8} {'requests':>9} "
            + " ".join(f"{p:>8}" for p in PERCENTILES)
            + f" {'errors':>7}\n"
        )
        for (name, shape), results in runs.items():
            merged = pooled(results)
            latency = merged["latency_ms"]
            sys.stdout.write(
                f"{name:<14} {shape:<8} {merged['ok']:>9} "
                + " ".join(f"{latency.get(p, float('nan')):>8.2f}" for p in PERCENTILES)
                + f" {merged['error_rate']:>7.2%}\n"
            )
    finally:
        for gateway in gateways.values():
            gateway.stop()
        mock.stop()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.trace_overhead")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency-requests", type=int, default=1500)
    parser.add_argument("--rate", type=float, default=100.0, help="open-loop requests/s")
    parser.add_argument("--seconds", type=float, default=20.0, help="open-loop seconds a round")
    parser.add_argument("--latency-only", action="store_true", help="skip the CPU variants")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-trace-overhead-"))
    sink = start_sink(work)
    server = start_mlflow_server(
        ensure_mlflow_venv(repo_root()), free_port(), work / "mlflow", work / "mlflow.log"
    )
    try:
        server.wait_ready(timeout=300)
        # MLflow and the sink stand in for servers on machines of their own: at nice 19 they
        # get only the CPU the gateway, the mock and the load generator leave (all share this
        # machine's two cores), so the latency rounds measure the gateway's request path, not
        # a tracking server taking its core.
        for pid in process_tree(server.pid) + process_tree(sink.pid):
            os.setpriority(os.PRIO_PROCESS, pid, 19)
        code = 0
        if not args.latency_only:
            argv = [sys.executable, "-m", "bench.cpu_cost", "--chain", "full"]
            argv += ["--requests", str(args.requests), "--concurrency", str(args.concurrency)]
            argv += ["--rounds", str(args.rounds)]
            argv += ["--variant", f"to-mlflow:MLFLOW_TRACKING_URI={server.url}"]
            argv += ["--variant", f"to-sink:MLFLOW_TRACKING_URI={sink.url}"]
            argv += ["--variant", "tracking-off:TRACKING_ENABLED=false"]
            code = subprocess.run(argv, cwd=ROOT, check=False).returncode
        latency_rounds(server.url, sink.url, work, args)
        return code
    finally:
        server.stop()
        sink.stop()


def start_sink(work: Path) -> ServiceProcess:
    port = free_port()
    sink = ServiceProcess(
        "otlp sink",
        [sys.executable, "-m", "bench.otlp_sink", "--port", str(port)],
        url=f"http://127.0.0.1:{port}",
        log_path=work / "sink.log",
        env=clean_env(),
        cwd=ROOT,
    )
    sink.wait_ready("/health", timeout=30)
    return sink


if __name__ == "__main__":
    raise SystemExit(main())
