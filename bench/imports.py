"""What a worker pays at start for each heavy import: RSS and wall time, each measured in a
fresh interpreter pinned to the server core (so earlier imports cannot hide a later one's cost).

    .venv/bin/python -m bench.imports
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from bench.stack import pinned

MODULES = (
    "",  # the bare interpreter, the baseline
    "numpy",
    "fastapi",
    "opentelemetry.sdk.trace",
    "qdrant_client",
    "mlflow.tracing",
    "llm_gateway.app",
)
PROBE = (
    "import sys, time\n"
    "started = time.perf_counter()\n"
    "name = sys.argv[1]\n"
    "if name: __import__(name)\n"
    "elapsed = time.perf_counter() - started\n"
    "rss = [l for l in open('/proc/self/status') if l.startswith('VmRSS:')][0].split()[1]\n"
    "print(int(rss) / 1024, elapsed)\n"
)


def measure(module: str, repeats: int = 2) -> dict[str, Any]:
    runs = []
    for _ in range(repeats):
        argv = pinned([sys.executable, "-c", PROBE, module])
        out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout.split()
        runs.append((float(out[0]), float(out[1])))
    # The fastest run is the one least disturbed by other work on the machine.
    rss, seconds = min(runs, key=lambda run: run[1])
    return {"module": module or "(bare interpreter)", "rss_mb": rss, "seconds": seconds}


def measure_all() -> list[dict[str, Any]]:
    return [measure(module) for module in MODULES]


def main() -> int:
    print(json.dumps(measure_all(), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
