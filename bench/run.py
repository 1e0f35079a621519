"""`make bench`: every scenario of issue 6 in one run, then bench/RESULTS.md and bench/plots/.

    .venv/bin/python -m bench.run            # ~6-10 min
    BENCH_QUICK=1 .venv/bin/python -m bench.run   # 1-2 min smoke run, same tables
    BENCH_SOAK=1 .venv/bin/python -m bench.run    # adds the 10-minute memory soak

Servers (mock, LiteLLM proxy, gateways with ONE worker each) run pinned to core 0, the load
generator to core 1. The mock's delay is switched at runtime (0 ms, then 20 ms) through its
control endpoint, so every scenario talks to the same mock process. Raw results go to
bench/results.json; bench.report turns them into RESULTS.md and the plots.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench import imports, profile, report, semantic_quality
from bench.loadgen import summarise
from bench.stack import (
    FLOOR,
    FULL_CHAIN,
    LITELLM_KEY,
    LOADGEN_CPU,
    ROOT,
    Gateway,
    children,
    cpu_seconds_when_idle,
    free_port,
    rss_split_mb,
    set_mock,
    speed_probe_ms,
    start_litellm,
    start_mock,
    users_json,
)

QUICK = os.environ.get("BENCH_QUICK") == "1"
SOAK = os.environ.get("BENCH_SOAK") == "1"
DURATION = 2.0 if QUICK else 6.0  # seconds measured per latency run
RPS_DURATION = 3.0 if QUICK else 10.0
WARMUP = 0.5 if QUICK else 1.0
LATENCY_ROUNDS = 2 if QUICK else 4  # c=1 rounds per scenario, interleaved (see Bench.latency)
MODEL = "fake-model"
CHAT_PATH = "/v1/chat/completions"


def chat_body(prompt: str, stream: bool = False) -> str:
    body: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": prompt}]}
    if stream:
        body["stream"] = True
    return json.dumps(body)


UNIQUE_BODY = chat_body("Explain item __N__ of the catalogue in two sentences.")


def loadgen(spec: dict[str, Any], *, background: bool = False) -> Any:
    """Run bench.loadgen in its own process; return its result (or the Popen and out path)."""
    spec = {"cpu": LOADGEN_CPU, "warmup": WARMUP, **spec}
    work = Path(tempfile.mkdtemp(prefix="bench-load-"))
    (work / "spec.json").write_text(json.dumps(spec))
    argv = [sys.executable, "-m", "bench.loadgen", "--spec", str(work / "spec.json")]
    argv += ["--out", str(work / "out.json")]
    proc = subprocess.Popen(argv, cwd=ROOT)
    if background:
        return proc, work / "out.json"
    if proc.wait() != 0:
        raise RuntimeError(f"loadgen failed: {spec}")
    return json.loads((work / "out.json").read_text())


def prime(url: str, headers: dict[str, str], body: str, times: int = 1) -> None:
    """Send `body` `times` times and insist on 200 (warms lazy paths, fills a cache entry)."""
    headers = {**headers, "Content-Type": "application/json"}
    with httpx.Client(timeout=60) as client:
        for n in range(times):
            marked = body.replace("__N__", f"prime-{n}")
            client.post(url, content=marked, headers=headers).raise_for_status()


def pooled(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Several runs of one scenario as one: latencies pooled, counts and CPU time summed."""
    latencies = [value for run in runs for value in run.pop("latencies_raw_ms")]
    ok = sum(run["ok"] for run in runs)
    errors: Counter[str] = Counter()
    for run in runs:
        errors.update(run["errors"])
    failed = errors.total()
    elapsed = sum(run["elapsed_s"] for run in runs)
    sent = sum(run["requests_sent"] for run in runs)
    result = {
        **runs[0],
        "rounds": len(runs),
        "elapsed_s": elapsed,
        "ok": ok,
        "errors": dict(errors),
        "error_rate": failed / (ok + failed) if ok + failed else 0.0,
        "rps": ok / elapsed if elapsed > 0 else 0.0,
        "requests_sent": sent,
        "latency_ms": summarise(latencies),
    }
    if all("server_cpu_ms_per_request" in run for run in runs) and sent:
        spent = sum(run["server_cpu_ms_per_request"] * run["requests_sent"] for run in runs)
        result["server_cpu_ms_per_request"] = spent / sent
    return result


class Bench:
    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.results: dict[str, Any] = {"latency": {}, "rps": {}, "cache": {}, "stream": {}}
        self.targets: dict[str, tuple[str, dict[str, str]]] = {}
        # The processes serving a target (without the mock behind it): their CPU time per
        # request is the cost figure least moved by other load on the machine.
        self.servers: dict[str, list[int]] = {}

    def log(self, message: str) -> None:
        sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {message}\n")
        sys.stderr.flush()

    def measure(self, target: str, concurrency: int, body: str = UNIQUE_BODY, **extra: Any) -> Any:
        url, headers = self.targets[target]
        spec = {"url": url, "headers": headers, "body": body, "concurrency": concurrency}
        spec.setdefault("duration", DURATION)
        spec.update(extra)
        pids = self.servers.get(target, [])
        before = cpu_seconds_when_idle(pids)
        result = loadgen(spec)
        if pids and result.get("requests_sent"):
            spent = cpu_seconds_when_idle(pids) - before
            result["server_cpu_ms_per_request"] = spent * 1000 / result["requests_sent"]
        lat = result["latency_ms"]
        self.log(
            f"{target} c={concurrency}: {result['rps']:.0f} rps, p50 {lat.get('p50', 0):.2f} ms, "
            f"p99 {lat.get('p99', 0):.2f} ms, errors {result['errors']}"
        )
        return result

    # --- scenarios -----------------------------------------------------------------------------
    def latency(self, names: list[str]) -> None:
        # c=1 is where the added-latency targets are read, and a few seconds of outside load on
        # a shared machine can move one scenario's figures by a third. So c=1 runs in rounds,
        # the scenarios interleaved, and each scenario's latencies are pooled over its rounds:
        # a burst of outside load lands on all of them alike instead of on one.
        rounds: dict[str, list[Any]] = {name: [] for name in names}
        for _ in range(LATENCY_ROUNDS):
            for name in names:
                duration = DURATION / LATENCY_ROUNDS
                rounds[name].append(self.measure(name, 1, duration=duration, raw=True))
        for name in names:
            self.results["latency"][name] = {
                "c1": pooled(rounds[name]),
                "c64": self.measure(name, 64),
            }

    def sustained_rps(self, names: list[str]) -> None:
        # Closed loop at falling concurrency until p99 < 1 s and errors < 0.1 % both hold.
        for name in names:
            tried = []
            for concurrency in (64, 32, 16, 8):
                result = self.measure(name, concurrency, duration=RPS_DURATION)
                result["meets_slo"] = (
                    result["latency_ms"].get("p99", 1e9) < 1000 and result["error_rate"] < 0.001
                )
                tried.append(result)
                if result["meets_slo"]:
                    break
            best = max(tried, key=lambda r: (r["meets_slo"], r["rps"]))
            self.results["rps"][name] = {"best": best, "tried": tried}

    def cache_hits(self, gateway: Gateway, pair: dict[str, Any] | None) -> None:
        url = gateway.url + CHAT_PATH
        exact = chat_body("What is the capital of France?")
        prime(url, gateway.auth, exact)
        self.targets["exact_hit"] = (url, gateway.auth)
        self.results["cache"]["exact_hit"] = {
            f"c{c}": self.measure("exact_hit", c, exact, count_header="x-cache") for c in (1, 64)
        }
        if pair is None:
            self.results["cache"]["semantic_hit"] = None
            return
        stored, paraphrase = chat_body(pair["a"]), chat_body(pair["b"])
        prime(url, gateway.auth, stored)
        time.sleep(0.5)  # the store runs in the background after the answer
        self.targets["semantic_hit"] = (url, gateway.auth)
        self.results["cache"]["semantic_hit"] = {
            f"c{c}": self.measure("semantic_hit", c, paraphrase, count_header="x-cache")
            for c in (1, 64)
        }
        self.results["cache"]["semantic_pair"] = pair

    def streaming(self, names: list[str]) -> None:
        body = chat_body("Stream item __N__ of the catalogue.", stream=True)
        for name in names:
            self.results["stream"][name] = {
                f"c{c}": self.measure(name, c, body, stream=True) for c in (1, 16)
            }

    def drain(self, gateway: Gateway, mock_url: str, in_flight: int, delay_ms: int) -> None:
        set_mock(mock_url, latency_ms=delay_ms)
        url, headers = self.targets["gw_full"]
        before = mock_requests(mock_url)
        proc, out = loadgen(
            {
                "url": url,
                "headers": headers,
                "body": UNIQUE_BODY,
                "concurrency": in_flight,
                "requests": in_flight,
                "warmup": 0.0,
                "timeout": 60,
            },
            background=True,
        )
        # SIGTERM only once every request has reached the mock, i.e. is truly in flight.
        deadline = time.monotonic() + 30
        while mock_requests(mock_url) < before + in_flight and time.monotonic() < deadline:
            time.sleep(0.02)
        reached = mock_requests(mock_url) - before
        signalled = time.monotonic()
        gateway.terminate()
        code = gateway.process.proc.wait(timeout=60)
        exited = time.monotonic() - signalled
        proc.wait(timeout=60)
        result = json.loads(out.read_text())
        self.results["drain"] = {
            "in_flight": in_flight,
            "reached_upstream_before_sigterm": reached,
            "mock_delay_ms": delay_ms,
            "sigterm_to_exit_s": exited,
            "exit_code": code,
            "completed_ok": result["ok"],
            "errors": result["errors"],
            "graceful_shutdown_logged": "graceful_shutdown_completed" in gateway.process.output(),
        }
        self.log(f"drain: {self.results['drain']}")
        set_mock(mock_url, latency_ms=0)

    def soak(self, gateway: Gateway, minutes: float, rate: int = 50, chain: str = "full") -> None:
        url, headers = self.targets["gw_full"]
        duration = minutes * 60
        proc, out = loadgen(
            {
                "url": url,
                "headers": headers,
                "body": UNIQUE_BODY,
                "rate": rate,
                "concurrency": 256,
                "duration": duration,
                "warmup": 0.0,
            },
            background=True,
        )
        samples: list[tuple[float, float]] = []
        anon: list[tuple[float, float]] = []  # the split says whether growth is a leak
        started = time.monotonic()
        while proc.poll() is None:
            now = time.monotonic() - started
            split = [rss_split_mb(pid) for pid in gateway.workers()]
            samples.append((now, sum(gateway.worker_rss_mb())))
            anon.append((now, sum(a for a, _ in split)))
            time.sleep(10)
        result = json.loads(out.read_text())
        self.results["soak"] = {
            "minutes": minutes,
            "rate": rate,
            "samples": samples,
            "anon_samples": anon,
            "slope_mb_per_min": slope(samples) * 60,
            "anon_slope_mb_per_min": slope(anon) * 60,
            "rps": result["rps"],
            "errors": result["errors"],
        }
        self.results["soak"]["chain"] = chain
        name = "soak.json" if chain == "full" else f"soak-{chain}.json"
        (ROOT / "bench" / name).write_text(json.dumps(self.results["soak"]))
        self.log(
            f"soak slope {self.results['soak']['slope_mb_per_min']:.2f} MB/min "
            f"(anonymous {self.results['soak']['anon_slope_mb_per_min']:.2f})"
        )


def mock_requests(mock_url: str) -> int:
    total: int = httpx.get(f"{mock_url}/_stats", timeout=5).json()["total"]
    return total


def slope(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB) after the first minute (warm-up growth excluded)."""
    points = [p for p in samples if p[0] >= 60] or samples
    if len(points) < 2:
        return 0.0
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    num = sum((x - mean_x) * (y - mean_y) for x, y in points)
    den = sum((x - mean_x) ** 2 for x, _ in points)
    return num / den if den else 0.0


def machine() -> dict[str, Any]:
    # Other work on the machine skews every figure; the load average says how busy it was.
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": QUICK,
        "load_average_at_start": os.getloadavg(),
        "speed_probe_ms_at_start": speed_probe_ms(),
    }


def main() -> int:
    logs = ROOT / "bench" / ".work"
    logs.mkdir(parents=True, exist_ok=True)
    bench = Bench(logs)
    results = bench.results
    results["machine"] = machine()
    quality = semantic_quality.evaluate()
    results["semantic_quality"] = quality
    users = users_json()
    mock = start_mock(free_port(), logs)
    started: list[Any] = [mock.stop]
    try:
        bench.log("starting the LiteLLM proxy (its venv is built on first use)")
        litellm = start_litellm(mock.url, free_port(), logs)
        started.append(litellm.stop)
        results["litellm_ready_s"] = litellm.ready_seconds
        gateways: dict[str, Gateway] = {}
        plan = {
            "gw_full": (mock.url, FULL_CHAIN),
            "gw_floor": (mock.url, FLOOR),
            "gw_httpx": (mock.url, {**FULL_CHAIN, "UPSTREAM_TRANSPORT": "httpx"}),
            "gw_litellm": (litellm.url, FULL_CHAIN),
        }
        for name, (upstream, settings) in plan.items():
            gateway = Gateway(name, free_port(), upstream, settings, logs, users)
            gateways[name] = gateway
            started.append(gateway.stop)
            bench.log(f"{name} ready in {gateway.ready_seconds:.2f}s")
        bench.targets["direct"] = (mock.url + CHAT_PATH, {})
        bench.targets["litellm"] = (
            litellm.url + CHAT_PATH,
            {"Authorization": f"Bearer {LITELLM_KEY}"},
        )
        for name, gateway in gateways.items():
            bench.targets[name] = (gateway.url + CHAT_PATH, gateway.auth)
            bench.servers[name] = gateway.workers()
        bench.servers["direct"] = [mock.pid]
        bench.servers["litellm"] = [litellm.pid, *children(litellm.pid)]
        results["ready_s"] = {name: g.ready_seconds for name, g in gateways.items()}
        results["rss_idle_mb"] = {name: g.worker_rss_mb() for name, g in gateways.items()}

        set_mock(mock.url, latency_ms=0)
        for url, headers in bench.targets.values():
            prime(url, headers, UNIQUE_BODY, times=5)  # first calls pay lazy imports
        bench.latency(["direct", "litellm", "gw_full", "gw_litellm", "gw_floor", "gw_httpx"])
        bench.cache_hits(gateways["gw_full"], quality["hit_pair"])
        set_mock(mock.url, stream_chunks=16, chunk_delay_ms=5)
        bench.streaming(["direct", "litellm", "gw_full", "gw_litellm"])
        set_mock(mock.url, latency_ms=20, stream_chunks=3, chunk_delay_ms=0)
        bench.sustained_rps(["direct", "litellm", "gw_full", "gw_litellm", "gw_floor"])
        set_mock(mock.url, latency_ms=0)
        results["profiles"] = {
            name: profile.record(gateways[name], bench, seconds=4 if QUICK else 12, target=name)
            for name in ("gw_full", "gw_floor")
        }
        results["rss_loaded_mb"] = {name: g.worker_rss_mb() for name, g in gateways.items()}
        if SOAK:
            bench.soak(gateways["gw_full"], minutes=10)
        bench.drain(gateways["gw_full"], mock.url, in_flight=50, delay_ms=2000)
        results["imports"] = imports.measure_all()
    finally:
        results["machine"]["load_average_at_end"] = os.getloadavg()
        results["machine"]["speed_probe_ms_at_end"] = speed_probe_ms()
        for stop in reversed(started):
            try:
                stop()
            except Exception as exc:  # keep stopping the others
                bench.log(f"stop failed: {exc!r}")
        out = ROOT / "bench" / "results.json"
        out.write_text(json.dumps(results, indent=1))
    report.write(results)
    bench.log("wrote bench/RESULTS.md and bench/plots/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
