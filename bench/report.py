"""bench/results.json -> bench/RESULTS.md (tables, targets met or missed) and bench/plots/*.png.

    .venv/bin/python -m bench.report      # re-render from the last run's results.json

Added latency is the scenario's percentile minus the direct call's percentile at the same
concurrency, in the same run. bench/analysis.md (hand-written reading of a run), when present,
is appended verbatim.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench import plots

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
LABELS = {
    "direct": "1 direct → mock",
    "litellm": "2 LiteLLM → mock",
    "gw_full": "3 gateway (full chain) → mock",
    "gw_litellm": "4 gateway → LiteLLM → mock",
    "gw_floor": "5 gateway floor → mock",
    "gw_httpx": "3 with UPSTREAM_TRANSPORT=httpx",
}


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def last_soak(chain: str = "full") -> dict[str, Any] | None:
    """The soak is optional and long; a separate run's figures (bench/soak*.json) are reused."""
    path = BENCH / ("soak.json" if chain == "full" else f"soak-{chain}.json")
    return json.loads(path.read_text()) if path.exists() else None


def fmt_speed(machine: dict[str, Any]) -> str:
    start, end = machine.get("speed_probe_ms_at_start"), machine.get("speed_probe_ms_at_end")
    if start is None:
        return ""
    return (
        f"; speed probe (bench/stack.py `speed_probe_ms`, a fixed Python loop on the server core, "
        f"lower is faster) {start:.0f} ms at start, "
        + (f"{end:.0f} ms at end" if end is not None else "not read at end")
    )


def fmt_load(values: list[float] | None) -> str:
    return "/".join(f"{v:.1f}" for v in values) if values else "-"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def added(results: dict[str, Any], name: str, conc: str, q: str) -> float | None:
    lat = results["latency"]
    try:
        return float(lat[name][conc]["latency_ms"][q] - lat["direct"][conc]["latency_ms"][q])
    except KeyError:
        return None


def latency_section(results: dict[str, Any]) -> list[str]:
    out = ["## Latency at 0 ms mock delay (ms; added = scenario - direct, same percentile)", ""]
    for conc in ("c1", "c64"):
        rows = []
        for name, by_conc in results["latency"].items():
            r = by_conc[conc]
            lat = r["latency_ms"]
            rows.append(
                [
                    LABELS.get(name, name),
                    ms(lat.get("p50")),
                    ms(lat.get("p90")),
                    ms(lat.get("p99")),
                    ms(added(results, name, conc, "p50")),
                    ms(added(results, name, conc, "p90")),
                    ms(added(results, name, conc, "p99")),
                    f"{r['rps']:.0f}",
                    ms(r.get("server_cpu_ms_per_request")),
                    f"{r['error_rate']:.2%}",
                ]
            )
        out.append(f"### concurrency {conc[1:]}")
        out.append("")
        rounds = {by_conc[conc].get("rounds") for by_conc in results["latency"].values()}
        if rounds != {None}:
            out.append(
                f"{max(r or 1 for r in rounds)} rounds per scenario, the scenarios interleaved, "
                "latencies pooled over the rounds (outside load lands on every scenario alike)."
            )
            out.append("")
        out += table(
            [
                "scenario",
                "p50",
                "p90",
                "p99",
                "added p50",
                "added p90",
                "added p99",
                "RPS",
                "server CPU ms/req",
                "errors",
            ],
            rows,
        )
    out += [
        "Server CPU ms/req: CPU time (user + system, from /proc) of the process serving the "
        "scenario (the mock for direct, the LiteLLM proxy, the gateway worker; not the mock "
        "behind them) divided by the requests sent, warm-up included. It is the cost figure "
        "least moved by other load on a shared machine.",
        "",
    ]
    return out


def rps_section(results: dict[str, Any]) -> list[str]:
    rps = results["rps"]
    direct = rps.get("direct", {}).get("best", {}).get("rps")
    peer = rps.get("litellm", {}).get("best", {}).get("rps")
    rows = []
    for name, entry in rps.items():
        best = entry["best"]
        rows.append(
            [
                LABELS.get(name, name),
                str(best["concurrency"]),
                f"{best['rps']:.0f}",
                ms(best["latency_ms"].get("p99")),
                f"{best['error_rate']:.3%}",
                "yes" if best["meets_slo"] else "no",
                f"{best['rps'] / direct:.2f}x" if direct else "-",
                f"{best['rps'] / peer:.1f}x" if peer else "-",
            ]
        )
    return [
        "## Sustained RPS at 20 ms mock delay (closed loop; highest concurrency of 64/32/16/8 "
        "with p99 < 1 s and errors < 0.1 %)",
        "",
        *table(
            [
                "scenario",
                "concurrency",
                "RPS",
                "p99 ms",
                "errors",
                "meets SLO",
                "vs direct",
                "vs LiteLLM",
            ],
            rows,
        ),
    ]


def transport_section(results: dict[str, Any]) -> list[str]:
    lat = results["latency"]
    if "gw_httpx" not in lat:
        return []
    rows = []
    for name, label in (("gw_full", "aiohttp (native adapter)"), ("gw_httpx", "httpx pool")):
        c1, c64 = lat[name]["c1"]["latency_ms"], lat[name]["c64"]
        rows.append(
            [
                label,
                ms(c1.get("p50")),
                ms(c1.get("p99")),
                ms(c64["latency_ms"].get("p99")),
                f"{c64['rps']:.0f}",
            ]
        )
    return [
        "## Upstream transport (scenario 3, UPSTREAM_TRANSPORT switched)",
        "",
        *table(["transport", "c=1 p50 ms", "c=1 p99 ms", "c=64 p99 ms", "c=64 RPS"], rows),
    ]


def cache_section(results: dict[str, Any]) -> list[str]:
    rows = []
    for name in ("exact_hit", "semantic_hit"):
        entry = results["cache"].get(name)
        if not entry:
            rows.append([name, "-", "-", "-", "-", "not measured"])
            continue
        c1, c64 = entry["c1"], entry["c64"]
        rows.append(
            [
                name,
                ms(c1["latency_ms"].get("p50")),
                ms(c1["latency_ms"].get("p99")),
                ms(c64["latency_ms"].get("p99")),
                f"{c64['rps']:.0f}",
                ", ".join(f"{k}: {v}" for k, v in {**c1["headers"]}.items()),
            ]
        )
    pair = results["cache"].get("semantic_pair")
    lines = [
        "## Cache hits (scenario 6, gateway full chain; X-Cache header counted to prove the tier)",
        "",
        *table(
            ["path", "c=1 p50 ms", "c=1 p99 ms", "c=64 p99 ms", "c=64 RPS", "X-Cache at c=1"], rows
        ),
    ]
    if pair:
        lines += [
            f"Semantic hit: stored “{pair['a']}”, asked “{pair['b']}” "
            f"(hashing-embedder cosine {pair['similarity']:.3f}).",
            "",
        ]
    return lines


def stream_section(results: dict[str, Any]) -> list[str]:
    stream = results["stream"]
    if "direct" not in stream:
        return []
    rows = []
    for conc in ("c1", "c16"):
        base = stream["direct"][conc]
        for name, entry in stream.items():
            r = entry[conc]
            ttft, gap = r["ttft_ms"], r["chunk_gap_ms"]
            rows.append(
                [
                    LABELS.get(name, name),
                    conc[1:],
                    ms(ttft.get("p50")),
                    ms(ttft.get("p99")),
                    ms(ttft.get("p50", 0) - base["ttft_ms"].get("p50", 0)),
                    ms(ttft.get("p99", 0) - base["ttft_ms"].get("p99", 0)),
                    ms(gap.get("p50")),
                    ms(gap.get("p99")),
                    f"{r['error_rate']:.2%}",
                ]
            )
    return [
        "## Streaming (scenario 7; 16 chunks, 5 ms apart at the mock)",
        "",
        *table(
            [
                "scenario",
                "c",
                "TTFT p50",
                "TTFT p99",
                "added TTFT p50",
                "added TTFT p99",
                "chunk gap p50",
                "chunk gap p99",
                "errors",
            ],
            rows,
        ),
    ]


def process_section(results: dict[str, Any]) -> list[str]:
    rows = []
    for name, ready in results.get("ready_s", {}).items():
        idle = results.get("rss_idle_mb", {}).get(name, [])
        loaded = results.get("rss_loaded_mb", {}).get(name, [])
        rows.append(
            [
                LABELS.get(name, name),
                f"{ready:.2f}",
                ", ".join(f"{v:.0f}" for v in idle),
                ", ".join(f"{v:.0f}" for v in loaded),
            ]
        )
    lines = [
        "## Process: start to Ready, RSS per worker (1 worker each)",
        "",
        *table(["gateway", "start → /readyz 200 (s)", "idle RSS MB", "loaded RSS MB"], rows),
    ]
    if results.get("litellm_ready_s"):
        lines += [f"LiteLLM proxy start to ready: {results['litellm_ready_s']:.1f} s.", ""]
    drain = results.get("drain")
    if drain:
        lines += [
            "### Drain",
            "",
            f"{drain['in_flight']} requests in flight (mock delay {drain['mock_delay_ms']} ms), "
            f"SIGTERM to the gunicorn master: exited {drain['exit_code']} after "
            f"{drain['sigterm_to_exit_s']:.2f} s; {drain['completed_ok']}/{drain['in_flight']} "
            f"answered 200, errors {drain['errors'] or 'none'}; `graceful_shutdown_completed` "
            f"logged: {drain['graceful_shutdown_logged']}.",
            "",
        ]
    soaks = [soak for soak in (results.get("soak") or last_soak(), last_soak("floor")) if soak]
    if soaks:
        lines += ["### Memory soak (RSS of the worker every 10 s)", ""]
    for soak in soaks:
        first, last = soak["samples"][0][1], soak["samples"][-1][1]
        lines += [
            f"- {soak.get('chain', 'full')} chain, {soak['minutes']:.0f} min at {soak['rate']} "
            f"req/s, unique prompts: RSS {first:.0f} → {last:.0f} MB, slope after the first "
            f"minute {soak['slope_mb_per_min']:.2f} MB/min"
            + (
                f" (anonymous memory {soak['anon_slope_mb_per_min']:.2f} MB/min)"
                if "anon_slope_mb_per_min" in soak
                else ""
            )
            + f"; {soak['rps']:.0f} RPS, errors {soak['errors'] or 'none'}.",
        ]
    if soaks:
        lines += [""]
    return lines


def imports_section(results: dict[str, Any]) -> list[str]:
    rows = [
        [f"`{i['module']}`", f"{i['rss_mb']:.0f}", f"{i['seconds']:.2f}"]
        for i in results.get("imports", [])
    ]
    if not rows:
        return []
    return [
        "### Import cost (each in a fresh interpreter on the server core; RSS includes the "
        "interpreter's own ~9 MB)",
        "",
        *table(["import", "RSS MB after import", "seconds"], rows),
    ]


def semantic_section(results: dict[str, Any]) -> list[str]:
    quality = results["semantic_quality"]
    lines = [
        "## Semantic cache quality (tests/data/semantic_pairs.jsonl)",
        "",
        f"{quality['pairs']} pairs: {quality['paraphrases']} paraphrases, "
        f"{quality['non_paraphrases']} non-paraphrases ({quality['kinds']}).",
        "",
    ]
    for name, fig in quality["embedders"].items():
        rows = [
            [f"{r['threshold']:.2f}", f"{r['hit_rate']:.0%}", f"{r['false_hit_rate']:.1%}"]
            for r in fig["curve"]
            if round(r["threshold"] * 100) % 5 == 0
            or r["threshold"] in (fig["recommended"]["threshold"], fig["at_shipped"]["threshold"])
        ]
        rec, shipped = fig["recommended"], fig["at_shipped"]
        unsafe = max((r["threshold"] for r in fig["curve"] if r["false_hit_rate"] > 0), default=0)
        lines += [f"### {name}", "", *table(["threshold", "hit rate", "false-hit rate"], rows)]
        lines += [
            f"Lowest threshold with no false hit: **{rec['threshold']:.2f}** (paraphrase hit "
            f"rate {rec['hit_rate']:.0%}). Shipped SEMANTIC_CACHE_THRESHOLD "
            f"{quality['shipped_threshold']}: hit rate {shipped['hit_rate']:.0%}, false-hit "
            f"rate {shipped['false_hit_rate']:.1%}"
            + (
                f" — the curve supports it: no false hit, {shipped['threshold'] - unsafe:.2f} "
                f"above the highest threshold that still has one ({unsafe:.2f})."
                if shipped["false_hit_rate"] == 0
                else f" — false hits at the shipped value: {fig['false_hits_at_shipped_by_kind']}."
            ),
            "",
        ]
    for name, why in quality["not_evaluated"].items():
        lines += [f"Not evaluated: `{name}` embedder — {why}.", ""]
    return lines


def profile_section(results: dict[str, Any]) -> list[str]:
    profiles = results.get("profiles") or {}
    if not profiles and results.get("profile"):
        profiles = {"gw_full": results["profile"]}
    lines: list[str] = []
    for name, prof in profiles.items():
        label = LABELS.get(name, name)
        if "error" in prof:
            lines += [f"## Profile: {label}", "", prof["error"], ""]
            continue
        inclusive = {a["area"]: a["share"] for a in prof["areas"]}
        areas = [
            [a["area"], f"{a['share']:.1%}", f"{inclusive.get(a['area'], 0):.1%}"]
            for a in prof.get("owners", [])
        ]
        top = [[f"`{f['frame']}`", f"{f['share']:.1%}"] for f in prof["self"][:15]]
        lines += [
            f"## Profile: {label} under load (py-spy --gil, {prof['samples']} samples of the "
            f"worker at c=64, 0 ms mock; {prof['load']['rps']:.0f} RPS while sampled)",
            "",
            "Each GIL-holding sample belongs to the innermost recognised part of its stack "
            '("own", sums to 100 %); "inclusive" counts every sample the part is on the '
            "stack for (wrappers such as middleware include everything they call).",
            "",
            *table(["part", "own", "inclusive"], areas),
            "Leaf frames (self time):",
            "",
            *table(["frame", "self"], top),
        ]
    return lines


def targets(results: dict[str, Any]) -> list[str]:
    rows: list[list[str]] = []

    def check(
        name: str, value: float | None, limit: float, unit: str, smaller: bool = True
    ) -> None:
        if value is None:
            rows.append([name, "-", "not measured"])
            return
        ok = value <= limit if smaller else value >= limit
        sign = "≤" if smaller else "≥"
        rows.append([name, f"{value:.2f} {unit} ({sign} {limit:g})", "met" if ok else "MISSED"])

    check("added p50 at c=1 (gateway → mock)", added(results, "gw_full", "c1", "p50"), 1.5, "ms")
    check("added p99 at c=1 (gateway → mock)", added(results, "gw_full", "c1", "p99"), 5, "ms")
    gw, peer = added(results, "gw_full", "c1", "p99"), added(results, "litellm", "c1", "p99")
    check(
        "gateway added p99 / LiteLLM added p99",
        gw / peer if gw is not None and peer else None,
        0.2,
        "x",
    )
    rps = results["rps"]
    if "gw_full" in rps and "litellm" in rps:
        check(
            "RPS gateway / LiteLLM at 20 ms",
            rps["gw_full"]["best"]["rps"] / rps["litellm"]["best"]["rps"],
            10,
            "x",
            False,
        )
    if "gw_full" in rps and "gw_floor" in rps:
        cost = 1 - rps["gw_full"]["best"]["rps"] / rps["gw_floor"]["best"]["rps"]
        check("full chain throughput cost vs floor (20 ms)", cost * 100, 10, "%")
    lat = results["latency"]
    if "gw_full" in lat and "gw_floor" in lat:
        cost = 1 - lat["gw_full"]["c64"]["rps"] / lat["gw_floor"]["c64"]["rps"]
        check("full chain throughput cost vs floor (0 ms, CPU-bound)", cost * 100, 10, "%")
    check("start to Ready (full chain)", results.get("ready_s", {}).get("gw_full"), 3, "s")
    idle = results.get("rss_idle_mb", {}).get("gw_full")
    check("idle RSS per worker (full chain)", max(idle) if idle else None, 120, "MB")
    cache = results["cache"]
    for name, limit in (("exact_hit", 5), ("semantic_hit", 20)):
        entry = cache.get(name)
        value = entry["c1"]["latency_ms"].get("p99") if entry else None
        check(f"{name.replace('_', '-')} p99 at c=1", value, limit, "ms")
    soak = results.get("soak") or last_soak()
    if soak:
        check("soak memory slope (full chain)", soak["slope_mb_per_min"], 0.5, "MB/min")
    else:
        rows.append(["memory flat under 10-min soak", "-", "not run (BENCH_SOAK=1)"])
    return ["## Targets (issue 6)", "", *table(["target", "measured", "result"], rows)]


def headline(results: dict[str, Any]) -> list[str]:
    lat, rps = results["latency"], results["rps"]
    lines = ["## Headline", ""]
    gw, peer = added(results, "gw_full", "c1", "p50"), added(results, "litellm", "c1", "p50")
    gw99, peer99 = added(results, "gw_full", "c1", "p99"), added(results, "litellm", "c1", "p99")
    if gw is not None and peer:
        lines.append(
            f"- At c=1 the gateway (full chain) adds {gw:.2f} ms p50 / {gw99:.2f} ms p99 over a "
            f"direct call; LiteLLM proxy adds {peer:.2f} ms / {peer99:.2f} ms "
            f"(gateway = {gw / peer:.2f}x / {(gw99 or 0) / (peer99 or 1):.2f}x of LiteLLM's cost)."
        )
    if "gw_full" in rps and "litellm" in rps and "direct" in rps:
        g, p, d = (rps[n]["best"]["rps"] for n in ("gw_full", "litellm", "direct"))
        lines.append(
            f"- Sustained RPS at the 20 ms mock: gateway {g:.0f}, LiteLLM {p:.0f}, direct {d:.0f} "
            f"→ gateway = {g / p:.1f}x LiteLLM, {g / d:.2f}x direct."
        )
    if "gw_full" in lat and "gw_floor" in lat:
        f_, g_ = lat["gw_floor"]["c64"]["rps"], lat["gw_full"]["c64"]["rps"]
        lines.append(
            f"- CPU-bound (0 ms mock, c=64): floor {f_:.0f} RPS, full chain {g_:.0f} RPS "
            f"(the optional chain costs {1 - g_ / f_:.0%} of throughput)."
        )
    cpu = {
        name: lat[name]["c64"].get("server_cpu_ms_per_request")
        for name in ("litellm", "gw_full", "gw_floor")
        if name in lat
    }
    if all(cpu.get(name) for name in ("litellm", "gw_full", "gw_floor")):
        lines.append(
            f"- Server CPU per request (c=64, 0 ms mock): LiteLLM {cpu['litellm']:.2f} ms, "
            f"gateway full chain {cpu['gw_full']:.2f} ms, floor {cpu['gw_floor']:.2f} ms "
            f"(LiteLLM / full chain = {cpu['litellm'] / cpu['gw_full']:.1f}x)."
        )
    return [*lines, ""]


def write(results: dict[str, Any]) -> None:
    soaks = [soak for soak in (results.get("soak") or last_soak(), last_soak("floor")) if soak]
    made = plots.draw(results, BENCH / "plots", soaks)
    m = results["machine"]
    lines = [
        "# Benchmark results",
        "",
        "Regenerated by `make bench` (bench/run.py → bench/results.json → bench/report.py). "
        "Absolute times depend on the machine; the ratios are the point.",
        "",
        f"- Machine: {m['cpu_model']}, {m['cores']} cores, Linux {m['kernel']}, "
        f"Python {m['python']}; run {m['date']}; load average (1/5/15 min) at start "
        f"{fmt_load(m.get('load_average_at_start'))}, "
        f"at end {fmt_load(m.get('load_average_at_end'))}"
        + fmt_speed(m)
        + (" (BENCH_QUICK smoke run)" if m["quick"] else ""),
        "- Pinning: every server process (mock, LiteLLM proxy, gateways) on core 0 via "
        "`taskset`, the load generator (bench/loadgen.py, asyncio + aiohttp, exact latency "
        "lists) on core 1 via `os.sched_setaffinity`. The mock shares core 0 with the server "
        "under test, as it does for LiteLLM.",
        "- One gunicorn worker per gateway and `--num_workers 1` for LiteLLM, for a per-core "
        "comparison. Same request body everywhere: OpenAI `POST /v1/chat/completions`, a "
        "unique prompt per request (every gateway request is an exact- and semantic-cache "
        "miss), ~1 KB response.",
        "- Full chain (scenarios 3, 4): JWT verify, rate limit (limits far above the load), "
        "guard, exact+semantic cache miss (hashing embedder, Qdrant Edge shard) and store, "
        "tracking to the local journal, OpenTelemetry spans (no exporter), JSON access log, "
        "Prometheus metrics. Floor (5): all of those off except JWT.",
        "",
        *headline(results),
        *targets(results),
        *latency_section(results),
        *rps_section(results),
        *transport_section(results),
        *cache_section(results),
        *stream_section(results),
        *process_section(results),
        *imports_section(results),
        *semantic_section(results),
        *profile_section(results),
        "## Plots",
        "",
        *[f"![{p.stem}](plots/{p.name})" for p in made],
        "",
    ]
    analysis = BENCH / "analysis.md"
    if analysis.exists():
        lines += [analysis.read_text()]
    (BENCH / "RESULTS.md").write_text("\n".join(lines))


def main() -> int:
    write(json.loads((BENCH / "results.json").read_text()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
