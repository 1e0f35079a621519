"""The memory soak on its own: mock + full-chain gateway, open-loop load, RSS every 10 s.

    .venv/bin/python -m bench.soak [--minutes 10] [--rate 50]
    .venv/bin/python -m bench.soak --minutes 4 --set CACHE_MAX_ENTRIES=500 --output /tmp/s.json

`--chain floor` soaks the floor instead (bench/soak-floor.json): no cache, so growth there is
not cache fill. Writes bench/soak.json, which bench.report shows (and `make bench` with
BENCH_SOAK=1 refreshes). `--set NAME=VALUE` adds an env setting to the gateway (repeatable;
`PYTHONPATH=<copy>/service` soaks another copy of the code); `--output FILE` writes the result
there instead, leaving bench/soak*.json as the report last saw them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from bench.run import UNIQUE_BODY, Bench, prime
from bench.stack import FLOOR, FULL_CHAIN, ROOT, Gateway, free_port, start_mock, users_json


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=int, default=50)
    parser.add_argument("--chain", choices=["full", "floor"], default="full")
    parser.add_argument("--set", action="append", default=[], help="NAME=VALUE for the gateway")
    parser.add_argument("--output", type=Path, help="write the result here, not bench/soak*.json")
    args = parser.parse_args()
    extra = dict(item.split("=", 1) for item in args.set)
    # With --output the run gets its own label: its own work folder and result file, so runs
    # can overlap and the published bench/soak*.json stay as they were.
    label = args.chain if args.output is None else f"{args.chain}-{args.output.stem}"
    logs = ROOT / "bench" / ".work" / ("soak" if args.output is None else f"soak-{label}")
    logs.mkdir(parents=True, exist_ok=True)
    bench = Bench(Path(logs))
    mock = start_mock(free_port(), logs)
    try:
        settings = {**(FULL_CHAIN if args.chain == "full" else FLOOR), **extra}
        gateway = Gateway("gw_full", free_port(), mock.url, settings, logs, users_json())
        try:
            bench.targets["gw_full"] = (gateway.url + "/v1/chat/completions", gateway.auth)
            prime(*bench.targets["gw_full"], UNIQUE_BODY, times=5)
            bench.soak(gateway, args.minutes, rate=args.rate, chain=label)
        finally:
            gateway.stop()
    finally:
        mock.stop()
        written = ROOT / "bench" / f"soak-{label}.json"
        if args.output is not None and written.exists():
            shutil.move(written, args.output)
    result = bench.results.get("soak", {})
    samples = " ".join(f"{mb:.0f}" for _, mb in result.get("samples", []))
    sys.stdout.write(
        f"settings {json.dumps(extra)}\nRSS MB every 10 s: {samples}\n"
        f"slope {result.get('slope_mb_per_min', float('nan')):.2f} MB/min, "
        f"{result.get('rps', 0):.0f} RPS, errors {result.get('errors')}\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
