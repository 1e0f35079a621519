"""The cache's embedded store, side by side in one run: Qdrant Edge (this tree) against
qdrant-client's local mode (a copy of the tree before it) and the floor, plus the direct call.

    .venv/bin/python -m bench.store_compare --baseline /tmp/base/service
    .venv/bin/python -m bench.store_compare --baseline /tmp/base/service --also "v1=/tmp/v1/service"

(`git archive <commit before the Edge store> service | tar -x -C /tmp/base`.) One gunicorn
worker per gateway, pinned like bench/run.py's; rounds alternate between the variants so outside
load lands on all alike. Per variant: idle RSS of the worker before any request; for unique
prompts (every request a miss and a store) at c=1 and c=64 the worker's CPU ms per request, RPS,
p50 and p99; then exact-hit and semantic-hit latency at c=1 (the X-Cache header counted, to
prove the tier). Prints a markdown table; writes bench/store_compare.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.run import UNIQUE_BODY, chat_body, loadgen, prime
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

OUT = Path(__file__).with_name("store_compare.json")
STORED = "Explain how JWT authentication works."
PARAPHRASE = "How does JWT authentication work?"


def run_load(
    url: str, headers: dict[str, str], body: str, concurrency: int, requests: int, pids: list[int]
) -> dict[str, Any]:
    before = cpu_seconds_when_idle(pids)
    result = loadgen(
        {
            "url": url,
            "headers": headers,
            "body": body,
            "concurrency": concurrency,
            "requests": requests,
            "warmup": 0,
            "count_header": "x-cache",
        }
    )
    spent = cpu_seconds_when_idle(pids) - before
    return {
        "cpu_ms": spent * 1000 / max(result["requests_sent"], 1),
        "rps": result["rps"],
        "p50": result["latency_ms"].get("p50", 0.0),
        "p99": result["latency_ms"].get("p99", 0.0),
        "errors": result["errors"],
        "x_cache": dict(result.get("headers") or {}),
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.store_compare")
    parser.add_argument("--baseline", type=Path, required=True, help="service/ before Edge")
    parser.add_argument(
        "--also",
        action="append",
        default=[],
        metavar="LABEL=DIR",
        help="another service/ copy to run beside them (repeatable)",
    )
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    variants: dict[str, tuple[dict[str, str], str | None]] = {
        "full chain, Qdrant Edge": (FULL_CHAIN, None),
        "full chain, qdrant-client local": (FULL_CHAIN, str(args.baseline.resolve())),
        **{
            f"full chain, {label}": (FULL_CHAIN, str(Path(path).resolve()))
            for label, path in (item.split("=", 1) for item in args.also)
        },
        "floor": (FLOOR, None),
    }
    logs = Path(tempfile.mkdtemp(prefix="bench-store-"))
    mock = start_mock(free_port(), logs)
    set_mock(mock.url, latency_ms=0)
    gateways: dict[str, Gateway] = {}
    results: dict[str, Any] = {"started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    try:
        users = users_json()
        for n, (label, (env, path)) in enumerate(variants.items()):
            env = dict(env)
            if path is not None:
                env["PYTHONPATH"] = path
            gateways[label] = Gateway(f"v{n}", free_port(), mock.url, env, logs, users)
        time.sleep(3)
        results["idle_rss_mb"] = {label: g.worker_rss_mb()[0] for label, g in gateways.items()}
        for gateway in gateways.values():
            prime(gateway.url + "/v1/chat/completions", gateway.auth, UNIQUE_BODY, times=50)
        direct = mock.url + "/v1/chat/completions"
        loads: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for concurrency in (1, 64):
            for _ in range(args.rounds):
                for label, gateway in [("direct", None), *gateways.items()]:
                    url = direct if gateway is None else gateway.url + "/v1/chat/completions"
                    headers = {} if gateway is None else gateway.auth
                    pids = [mock.pid] if gateway is None else gateway.workers()
                    loads.setdefault(label, {}).setdefault(f"c{concurrency}", []).append(
                        run_load(url, headers, UNIQUE_BODY, concurrency, args.requests, pids)
                    )
        results["miss"] = {
            label: {
                c: {
                    key: statistics.median(r[key] for r in rounds)
                    for key in ("cpu_ms", "rps", "p50", "p99")
                }
                for c, rounds in per_c.items()
            }
            for label, per_c in loads.items()
        }
        results["hits"] = {}
        for label, gateway in gateways.items():
            if label == "floor":
                continue
            url = gateway.url + "/v1/chat/completions"
            prime(url, gateway.auth, chat_body("What is the capital of France?"))
            prime(url, gateway.auth, chat_body(STORED))
            time.sleep(0.5)  # the store runs once the answer is out
            pids = gateway.workers()
            results["hits"][label] = {
                "exact": run_load(
                    url,
                    gateway.auth,
                    chat_body("What is the capital of France?"),
                    1,
                    args.requests,
                    pids,
                ),
                "semantic": run_load(
                    url, gateway.auth, chat_body(PARAPHRASE), 1, args.requests, pids
                ),
            }
        results["loaded_rss_mb"] = {label: g.worker_rss_mb()[0] for label, g in gateways.items()}
    finally:
        for gateway in gateways.values():
            gateway.stop()
        mock.stop()
    OUT.write_text(json.dumps(results, indent=2))
    report(results)
    return 0


def report(results: dict[str, Any]) -> None:
    out = sys.stdout.write
    miss = results["miss"]
    direct = miss["direct"]
    out(f"run {results['started']}\n\n")
    out(
        "| variant | idle RSS MB | c=1 CPU ms/req | c=1 RPS | c=1 p50 | c=1 p99 | c=1 added p50 |"
        " c=1 added p99 | c=64 CPU ms/req | c=64 RPS | loaded RSS MB |\n"
    )
    out("|---|---|---|---|---|---|---|---|---|---|---|\n")
    for label, figures in miss.items():
        c1, c64 = figures["c1"], figures["c64"]
        rss = results["idle_rss_mb"].get(label)
        loaded = results["loaded_rss_mb"].get(label)
        out(
            f"| {label} | {rss if rss is None else round(rss)} | {c1['cpu_ms']:.2f} |"
            f" {c1['rps']:.0f} | {c1['p50']:.2f} | {c1['p99']:.2f} |"
            f" {c1['p50'] - direct['c1']['p50']:.2f} | {c1['p99'] - direct['c1']['p99']:.2f} |"
            f" {c64['cpu_ms']:.2f} | {c64['rps']:.0f} |"
            f" {loaded if loaded is None else round(loaded)} |\n"
        )
    out(
        "\n| variant | exact hit p50 | exact hit p99 | semantic hit p50 | semantic hit p99 |"
        " X-Cache (semantic run) |\n|---|---|---|---|---|---|\n"
    )
    for label, hits in results["hits"].items():
        out(
            f"| {label} | {hits['exact']['p50']:.2f} | {hits['exact']['p99']:.2f} |"
            f" {hits['semantic']['p50']:.2f} | {hits['semantic']['p99']:.2f} |"
            f" {hits['semantic']['x_cache']} |\n"
        )


if __name__ == "__main__":
    raise SystemExit(main())
