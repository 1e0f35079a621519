"""What tracing to MLflow costs the request path: tracking on (MLflow up) vs off, one run.

    .venv/bin/python -m bench.trace_overhead [--requests 2000 --concurrency 8 --rounds 3]

Starts an `mlflow server` (sqlite, its own venv), then runs bench.cpu_cost with three variants
of the full chain on the 0 ms mock, interleaved round by round: `to-mlflow` (tracking on,
exporting to that MLflow), `tracking-off` (TRACKING_ENABLED=false) and `full` (the bench's full
chain: tracking on without MLflow, every trace to the local journal). cpu_cost prints CPU ms per
request of the gateway worker (its export threads included) and the client's p50/p99 for each.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from devstack.mlflow import ensure_mlflow_venv, start_mlflow_server
from devstack.venvs import repo_root

from bench.stack import ROOT, free_port


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.trace_overhead")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-trace-overhead-"))
    server = start_mlflow_server(
        ensure_mlflow_venv(repo_root()), free_port(), work / "mlflow", work / "mlflow.log"
    )
    try:
        server.wait_ready(timeout=300)
        argv = [sys.executable, "-m", "bench.cpu_cost", "--chain", "full"]
        argv += ["--requests", str(args.requests), "--concurrency", str(args.concurrency)]
        argv += ["--rounds", str(args.rounds)]
        argv += ["--variant", f"to-mlflow:MLFLOW_TRACKING_URI={server.url}"]
        argv += ["--variant", "tracking-off:TRACKING_ENABLED=false"]
        return subprocess.run(argv, cwd=ROOT, check=False).returncode
    finally:
        server.stop()


if __name__ == "__main__":
    raise SystemExit(main())
