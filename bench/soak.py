"""The memory soak on its own: mock + full-chain gateway, open-loop load, RSS every 10 s.

    .venv/bin/python -m bench.soak [--minutes 10] [--rate 50]

`--chain floor` soaks the floor instead (bench/soak-floor.json): no cache, so growth there is
not cache fill. Writes bench/soak.json, which bench.report shows (and `make bench` with
BENCH_SOAK=1 refreshes).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.run import UNIQUE_BODY, Bench, prime
from bench.stack import FLOOR, FULL_CHAIN, ROOT, Gateway, free_port, start_mock, users_json


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=int, default=50)
    parser.add_argument("--chain", choices=["full", "floor"], default="full")
    args = parser.parse_args()
    logs = ROOT / "bench" / ".work" / "soak"
    logs.mkdir(parents=True, exist_ok=True)
    bench = Bench(Path(logs))
    mock = start_mock(free_port(), logs)
    try:
        settings = FULL_CHAIN if args.chain == "full" else FLOOR
        gateway = Gateway("gw_full", free_port(), mock.url, settings, logs, users_json())
        try:
            bench.targets["gw_full"] = (gateway.url + "/v1/chat/completions", gateway.auth)
            prime(*bench.targets["gw_full"], UNIQUE_BODY, times=5)
            bench.soak(gateway, args.minutes, rate=args.rate, chain=args.chain)
        finally:
            gateway.stop()
    finally:
        mock.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
