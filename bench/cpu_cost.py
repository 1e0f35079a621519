"""CPU milliseconds per request, variant against variant, interleaved in one run.

    .venv/bin/python -m bench.cpu_cost                      # full chain vs floor, this tree
    .venv/bin/python -m bench.cpu_cost --baseline /tmp/base/service   # + the same two on a copy
    .venv/bin/python -m bench.cpu_cost --chain full --requests 3000 --concurrency 8 --rounds 3
    .venv/bin/python -m bench.cpu_cost --ablate           # + the full chain minus each layer

Wall-clock latency on a shared 2-core machine moves with whatever else runs; the CPU time the
gateway worker spends per request (utime + stime from /proc, divided by the requests answered)
moves much less, so it is the figure to compare code changes by. Each variant is one gunicorn
worker pinned to the server core, talking to the 0 ms mock; rounds alternate between variants so
a burst of outside load hits them all alike. `--baseline DIR` runs the same chains from another
copy of `service/` (for example `git archive HEAD service | tar -x -C /tmp/base`), imported first
through PYTHONPATH.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from bench.run import UNIQUE_BODY, loadgen, prime
from bench.stack import (
    FLOOR,
    FULL_CHAIN,
    Gateway,
    cpu_seconds_when_idle,
    free_port,
    set_mock,
    start_mock,
    users_json,
)

# One optional layer off at a time: the full chain minus that layer prices the layer.
ABLATIONS: dict[str, dict[str, str]] = {
    "semantic": {"SEMANTIC_CACHE_ENABLED": "false"},
    "cache": {"CACHE_ENABLED": "false", "SEMANTIC_CACHE_ENABLED": "false"},
    "tracking": {"TRACKING_ENABLED": "false"},
    "ratelimit": {"RATE_LIMIT_ENABLED": "false"},
    "guard": {"GUARD_ENABLED": "false"},
    "tracing": {"TRACING_ENABLED": "false"},
    "accesslog": {"ACCESS_LOG_ENABLED": "false"},
    "metrics": {"METRICS_ENABLED": "false"},
}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cpu_cost")
    parser.add_argument("--chain", choices=["full", "floor", "both"], default="both")
    parser.add_argument("--baseline", type=Path, help="another service/ directory to compare")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--delay-ms", type=float, default=0.0, help="the mock's response delay")
    parser.add_argument("--set", action="append", default=[], help="NAME=VALUE for every variant")
    parser.add_argument(
        "--ablate",
        action="store_true",
        help="also run the full chain with each optional layer switched off, one at a time",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="LABEL:NAME=VALUE[,NAME=VALUE]",
        help="also run the full chain with these settings (repeatable)",
    )
    args = parser.parse_args()
    chains = {"full": FULL_CHAIN, "floor": FLOOR}
    names = list(chains) if args.chain == "both" else [args.chain]
    if args.ablate:
        for layer, switched_off in ABLATIONS.items():
            chains[f"-{layer}"] = {**FULL_CHAIN, **switched_off}
            names.append(f"-{layer}")
    for variant in args.variant:
        label, _, assignments = variant.partition(":")
        pairs = (item.split("=", 1) for item in assignments.split(",") if item)
        chains[label] = {**FULL_CHAIN, **dict(pairs)}
        names.append(label)
    extra = dict(item.split("=", 1) for item in args.set)
    sources: dict[str, str | None] = {"tree": None}
    if args.baseline is not None:
        sources["baseline"] = str(args.baseline.resolve())

    logs = Path(tempfile.mkdtemp(prefix="bench-cpu-"))
    mock = start_mock(free_port(), logs)
    set_mock(mock.url, latency_ms=args.delay_ms)
    gateways: dict[str, Gateway] = {}
    try:
        users = users_json()
        for source, path in sources.items():
            for chain in names:
                label = f"{chain}@{source}"
                env = {**chains[chain], **extra}
                if path is not None:
                    env["PYTHONPATH"] = path
                gateway = Gateway(label.replace("@", "_"), free_port(), mock.url, env, logs, users)
                gateways[label] = gateway
                url = gateway.url + "/v1/chat/completions"
                prime(url, gateway.auth, UNIQUE_BODY, times=50)
        per_request: dict[str, list[float]] = {label: [] for label in gateways}
        rps: dict[str, list[float]] = {label: [] for label in gateways}
        p50: dict[str, list[float]] = {label: [] for label in gateways}
        p99: dict[str, list[float]] = {label: [] for label in gateways}
        for _ in range(args.rounds):
            for label, gateway in gateways.items():
                (worker,) = gateway.workers()
                before = cpu_seconds_when_idle([worker])
                result = loadgen(
                    {
                        "url": gateway.url + "/v1/chat/completions",
                        "headers": gateway.auth,
                        "body": UNIQUE_BODY,
                        "concurrency": args.concurrency,
                        "requests": args.requests,
                        "warmup": 0,
                    }
                )
                spent = cpu_seconds_when_idle([worker]) - before
                per_request[label].append(spent * 1000 / max(result["requests_sent"], 1))
                rps[label].append(result["rps"])
                p50[label].append(result["latency_ms"]["p50"])
                p99[label].append(result["latency_ms"]["p99"])
        sys.stdout.write(
            f"{'variant':<20} {'CPU ms/request (median of rounds)':>34} {'rounds':>24} {'RPS':>8}"
            f" {'p50 ms':>7} {'p99 ms':>7}\n"
        )
        for label in gateways:
            rounds = " ".join(f"{value:.2f}" for value in per_request[label])
            sys.stdout.write(
                f"{label:<20} {statistics.median(per_request[label]):>34.3f} {rounds:>24} "
                f"{statistics.median(rps[label]):>8.0f} {statistics.median(p50[label]):>7.2f}"
                f" {statistics.median(p99[label]):>7.2f}\n"
            )
    finally:
        for gateway in gateways.values():
            gateway.stop()
        mock.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
