"""Every request becomes one MLflow trace under sustained load, through an MLflow outage.

    .venv/bin/python -m bench.trace_load                       # 10 min at the sustained rate
    .venv/bin/python -m bench.trace_load --minutes 3 --rate 30 --outage-at 60 --outage 45
    .venv/bin/python -m bench.trace_load --backend postgres    # MLflow on Debian's PostgreSQL

The real stack on loopback: the fake OpenAI upstream, the LiteLLM proxy in front of it (its own
venv), an `mlflow server` and one gateway worker (gunicorn, the full chain, MLFLOW_TRACKING_URI
set). Without `--rate`, the run first finds the stack's sustained rate: closed loops of 60 s at
falling concurrency (32, 16, 8) through the gateway and LiteLLM with MLflow up and exporting give
its capacity, the best rate whose p99 stays under 1 s without errors (bench.run's sustained-RPS
rule), and the load runs at 80 % of it: an open loop at 100 % of a server's capacity has no room
to absorb a stall (a first run at 48/s queued behind a few seconds of LiteLLM stall, timed out and
opened the circuit). An open-loop load then sends that many requests/s for `--minutes`, each with
its own X-Request-ID;
at `--outage-at` seconds MLflow is stopped, and `--outage` seconds later started again on the
same store and port. Every 2 s the gateway's /metrics (traces by fate, journal backlog) is read.

After the load, the run waits for the journal to drain, then counts the traces in MLflow through
its own search API by request id (`tags.request_id`), and reports: requests sent, traces found,
missing and duplicated request ids, traces dropped, the backlog's peak, the time from MLflow's
return to an empty journal, and the replay rate against the ingest rate. Figures go to stdout and
to bench/.work/trace_load.json (bench/RESULTS.md quotes them).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from devstack.mlflow import MlflowServer, ensure_mlflow_venv, start_mlflow_server
from devstack.postgres import PostgresServer, find_postgres_bin
from devstack.venvs import repo_root
from prometheus_client.parser import text_string_to_metric_families

from bench.run import MODEL, UNIQUE_BODY, loadgen
from bench.stack import (
    FULL_CHAIN,
    LOADGEN_CPU,
    ROOT,
    Gateway,
    free_port,
    process_tree_cpu_seconds,
    start_litellm,
    start_mock,
    users_json,
)

EXPERIMENT = "bench-trace-load"
SAMPLE_EVERY = 2.0
DRAIN_TIMEOUT = 600.0
SUSTAINED_SHARE = 0.8  # of the closed-loop capacity: the open loop's rate
OUT = ROOT / "bench" / ".work" / "trace_load.json"


class Mlflow:
    """One MLflow server on a fixed port and store, which the run stops and starts again."""

    def __init__(self, work: Path, store_uri: str | None, workers: int) -> None:
        self.venv = ensure_mlflow_venv(repo_root())
        self.port = free_port()
        self.work = work
        self.store_uri = store_uri
        self.workers = workers
        self.starts = 0
        self.server: MlflowServer | None = None
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> float:
        self.starts += 1
        self.server = start_mlflow_server(
            self.venv,
            self.port,
            self.work / "mlflow",
            self.work / f"mlflow-{self.starts}.log",
            backend_store_uri=self.store_uri,
            workers=self.workers,
        )
        return self.server.wait_ready(timeout=300)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


def metric_samples(gateway_url: str) -> dict[str, float]:
    """traces_total by outcome and the journal gauges, from the gateway's /metrics."""
    text = httpx.get(f"{gateway_url}/metrics", timeout=5).text
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "traces_total":
                found[sample.labels["outcome"]] = sample.value
            elif sample.name in ("trace_journal_backlog_bytes", "trace_journal_oldest_age_seconds"):
                found[sample.name] = sample.value
    return found


async def open_loop(
    url: str, auth: dict[str, str], rate: float, seconds: float, run_id: str
) -> dict[str, int]:
    """Send `rate` requests/s for `seconds` on a fixed schedule; status (or error) by request id."""
    outcome: dict[str, int] = {}
    headers = {**auth, "Content-Type": "application/json"}
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def one(n: int) -> None:
            request_id = f"load-{run_id}-{n}"
            body = json.dumps(
                {
                    "model": MODEL,
                    "messages": [{"role": "user", "content": f"question {run_id} {n}"}],
                }
            )
            try:
                async with session.post(
                    url, data=body, headers={**headers, "X-Request-ID": request_id}
                ) as response:
                    await response.read()
                    outcome[request_id] = response.status
            except (aiohttp.ClientError, TimeoutError, OSError):
                outcome[request_id] = 0

        tasks = []
        started = time.monotonic()
        total = int(rate * seconds)
        for n in range(total):
            delay = started + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(n)))
        await asyncio.gather(*tasks)
    return outcome


def count_traces(mlflow_url: str, run_id: str) -> dict[str, int]:
    """Traces per request id of this run, read through MLflow's search API (all pages)."""
    from mlflow.tracing.client import TracingClient

    found = httpx.get(
        f"{mlflow_url}/api/2.0/mlflow/experiments/get-by-name",
        params={"experiment_name": EXPERIMENT},
        timeout=30,
    ).json()
    experiment_id = found["experiment"]["experiment_id"]
    client = TracingClient(mlflow_url)
    counts: dict[str, int] = {}
    token = None
    while True:
        page = client.search_traces(
            locations=[experiment_id],
            filter_string=f"tags.request_id LIKE 'load-{run_id}-%'",
            max_results=500,
            page_token=token,
            include_spans=False,
        )
        for trace in page:
            request_id = trace.info.tags["request_id"]
            counts[request_id] = counts.get(request_id, 0) + 1
        token = page.token
        if not token:
            return counts


@contextlib.contextmanager
def database(backend: str, work: Path) -> Iterator[tuple[str | None, int | None]]:
    """MLflow's backend store URI (None: sqlite) and the database server's pid, if any."""
    if backend == "sqlite":
        yield None, None
        return
    pg = PostgresServer(find_postgres_bin(), work / "pg", free_port(), work / "pg.log")
    pg.start()
    try:
        yield pg.create_database("mlflow"), pg.proc.pid
    finally:
        pg.stop()


class CpuByPart:
    """Where the machine's CPU went, per part of the stack and per phase of the run: each part
    is a process tree (a server and the workers it forked); MLflow's changes at its restart."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, int], float] = {}
        self.seconds: dict[str, dict[str, float]] = {}

    def sample(self, phase: str, roots: dict[str, int | None]) -> None:
        for part, root in roots.items():
            if root is None:
                continue
            now = process_tree_cpu_seconds(root)
            before = self.seen.get((part, root), now)
            self.seen[(part, root)] = now
            spent = self.seconds.setdefault(phase, {})
            spent[part] = spent.get(part, 0.0) + max(0.0, now - before)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.trace_load")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument(
        "--rate", type=float, default=None, help="requests per second (default: sustained)"
    )
    parser.add_argument("--outage-at", type=float, default=240.0, help="seconds into the load")
    parser.add_argument("--outage", type=float, default=120.0, help="seconds MLflow is stopped")
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--mlflow-workers", type=int, default=None)
    parser.add_argument("--set", action="append", default=[], help="NAME=VALUE for the gateway")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {LOADGEN_CPU})
    workers = args.mlflow_workers or (2 if args.backend == "postgres" else 1)
    run_id = uuid.uuid4().hex[:8]
    work = Path(tempfile.mkdtemp(prefix="bench-trace-load-"))
    seconds = args.minutes * 60
    with contextlib.ExitStack() as stack, database(args.backend, work) as (store_uri, pg_pid):
        mock = start_mock(free_port(), work)
        stack.callback(mock.stop)
        proxy = start_litellm(mock.url, free_port(), work)
        stack.callback(proxy.stop)
        mlflow = Mlflow(work, store_uri, workers)
        mlflow.start()
        stack.callback(mlflow.stop)
        settings = {
            **FULL_CHAIN,
            "MLFLOW_TRACKING_URI": mlflow.url,
            "MLFLOW_EXPERIMENT_NAME": EXPERIMENT,
            # Every request must reach LiteLLM: no paraphrase hits between similar prompts.
            "SEMANTIC_CACHE_ENABLED": "false",
            **dict(item.split("=", 1) for item in args.set),
        }
        gateway = Gateway("gw_trace_load", free_port(), proxy.url, settings, work, users_json())
        stack.callback(gateway.stop)
        probe: list[dict[str, Any]] = []
        if args.rate is None:
            args.rate, probe = sustained_rate(gateway)
            time.sleep(10)  # the probe's own traces leave the export queue first
        timeline: list[dict[str, float]] = []
        events: dict[str, float] = {}
        cpu = CpuByPart()
        load_started = time.monotonic()

        def phase() -> str:
            if "drained" in events:
                return "after the drain"
            if "mlflow_back" in events:
                return "drain"
            if "outage_started" in events:
                return "outage"
            return "load, MLflow up"

        def sample() -> None:
            timeline.append({"t": round(time.monotonic() - load_started, 1)})
            with contextlib.suppress(httpx.HTTPError):
                timeline[-1].update(metric_samples(gateway.url))
            now = timeline[-1]
            # Drained: MLflow is back, everything journaled was replayed and the journal is empty,
            # whether or not the load still runs (new traffic meanwhile goes straight to MLflow).
            if (
                "mlflow_back" in events
                and "drained" not in events
                and now.get("trace_journal_backlog_bytes", 1) == 0
                and now.get("replayed", 0) >= now.get("journaled", 0) > 0
            ):
                events["drained"] = now["t"]
            server = mlflow.server
            cpu.sample(
                phase(),
                {
                    "litellm": proxy.pid,
                    "gateway": gateway.process.pid,
                    "mlflow": server.pid if server is not None else None,
                    "postgres": pg_pid,
                    "upstream mock": mock.pid,
                },
            )

        async def drive() -> dict[str, int]:
            load = asyncio.create_task(
                open_loop(
                    gateway.url + "/v1/chat/completions",
                    gateway.auth,
                    args.rate,
                    seconds,
                    run_id,
                )
            )

            async def outage() -> None:
                await asyncio.sleep(args.outage_at)
                events["outage_started"] = time.monotonic() - load_started
                await asyncio.to_thread(mlflow.stop)
                await asyncio.sleep(args.outage)
                events["restart_started"] = time.monotonic() - load_started
                await asyncio.to_thread(mlflow.start)
                events["mlflow_back"] = time.monotonic() - load_started

            async def sampler() -> None:
                while True:
                    await asyncio.to_thread(sample)
                    await asyncio.sleep(SAMPLE_EVERY)

            side = [asyncio.create_task(outage()), asyncio.create_task(sampler())]
            outcome = await load
            events["load_ended"] = time.monotonic() - load_started
            await side[0]
            # Then until the journal is empty and every live and replayed trace is acknowledged.
            deadline = time.monotonic() + DRAIN_TIMEOUT
            while time.monotonic() < deadline:
                last = timeline[-1] if timeline else {}
                acknowledged = last.get("exported", 0) + last.get("replayed", 0)
                dropped = last.get("dropped", 0)
                if last.get("trace_journal_backlog_bytes", 1) == 0 and (
                    acknowledged + dropped >= len(outcome)
                ):
                    events.setdefault("drained", last["t"])
                    events["all_acknowledged"] = last["t"]
                    break
                await asyncio.sleep(SAMPLE_EVERY)
            side[1].cancel()
            return outcome

        outcome = asyncio.run(drive())
        counts = count_traces(mlflow.url, run_id)
    report = {
        **summarise(outcome, counts, timeline, events, args),
        "rate_probe": probe,
        "cpu_cores_by_phase": cores_by_phase(cpu, timeline, events),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({**report, "timeline": timeline}, indent=1))
    sys.stdout.write(json.dumps(report, indent=1) + "\n")
    return 0 if report["missing"] == 0 and report["duplicated"] == 0 else 1


def cores_by_phase(
    cpu: CpuByPart, timeline: list[dict[str, float]], events: dict[str, float]
) -> dict[str, dict[str, float]]:
    """Average cores each part used in each phase (CPU seconds over the phase's length)."""
    end = timeline[-1]["t"] if timeline else 0.0
    bounds = {
        "load, MLflow up": (0.0, events.get("outage_started", end)),
        "outage": (events.get("outage_started", end), events.get("mlflow_back", end)),
        "drain": (events.get("mlflow_back", end), events.get("drained", end)),
    }
    report = {}
    for name, (start, stop) in bounds.items():
        if stop > start and name in cpu.seconds:
            report[name] = {
                part: round(seconds / (stop - start), 2)
                for part, seconds in sorted(cpu.seconds[name].items())
            }
    return report


def sustained_rate(gateway: Gateway) -> tuple[float, list[dict[str, Any]]]:
    """Closed loops at falling concurrency until p99 < 1 s with no errors; 80 % of that rate
    (rounded down to a whole request/s: the open loop's headroom), and every loop tried."""
    tried: list[dict[str, Any]] = []
    url = gateway.url + "/v1/chat/completions"
    for concurrency in (32, 16, 8):
        result = loadgen(
            {
                "url": url,
                "headers": gateway.auth,
                "body": UNIQUE_BODY,
                "concurrency": concurrency,
                "duration": 60.0,
            }
        )
        p99 = result["latency_ms"].get("p99", 1e9)
        ok = p99 < 1000 and result["error_rate"] < 0.001
        tried.append(
            {"concurrency": concurrency, "rps": round(result["rps"], 1), "p99_ms": p99, "ok": ok}
        )
        sys.stdout.write(f"probe c={concurrency}: {result['rps']:.1f} req/s, p99 {p99:.0f} ms\n")
        if ok:
            return float(int(result["rps"] * SUSTAINED_SHARE)), tried
    raise RuntimeError(f"no concurrency met p99 < 1 s without errors: {tried}")


def replay_rate(timeline: list[dict[str, float]], back: float) -> float | None:
    """Records replayed per second after MLflow's return: the replayed counter's rise over the
    samples in which it rose (the first replay waits for the next TRACE_REPLAY_INTERVAL tick)."""
    after = [s for s in timeline if s["t"] >= back]
    if not after:
        return None
    start, final = after[0].get("replayed", 0), after[-1].get("replayed", 0)
    rising = [s for s in after if s.get("replayed", 0) > start]
    if not rising:
        return None
    done = next(s for s in rising if s.get("replayed", 0) == final)
    seconds = done["t"] - rising[0]["t"] + SAMPLE_EVERY  # the first rise began a sample earlier
    return (final - start) / seconds


def summarise(
    outcome: dict[str, int],
    counts: dict[str, int],
    timeline: list[dict[str, float]],
    events: dict[str, float],
    args: argparse.Namespace,
) -> dict[str, Any]:
    missing = sorted(set(outcome) - set(counts))
    statuses: dict[str, int] = {}
    for status in outcome.values():
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    last = timeline[-1] if timeline else {}
    back = events.get("mlflow_back", 0.0)
    drained = events.get("drained")
    replay = replay_rate(timeline, back)
    # Traffic went on during the drain only if the journal emptied before the load ended.
    ingest = args.rate if drained is not None and drained <= events.get("load_ended", 0) else None
    return {
        "backend": args.backend,
        "rate_per_s": args.rate,
        "minutes": args.minutes,
        "requests_sent": len(outcome),
        "answered_by_status": statuses,
        "traces_found": sum(counts.values()),
        "request_ids_with_a_trace": len(counts),
        "missing": len(missing),
        "missing_examples": missing[:10],
        "duplicated": sum(1 for n in counts.values() if n > 1),
        "dropped_metric": last.get("dropped", 0),
        "journaled_metric": last.get("journaled", 0),
        "replayed_metric": last.get("replayed", 0),
        "exported_metric": last.get("exported", 0),
        "outage_seconds_mlflow_down": round(back - events.get("outage_started", back), 1),
        "backlog_peak_bytes": max(s.get("trace_journal_backlog_bytes", 0) for s in timeline),
        "oldest_age_peak_seconds": max(
            s.get("trace_journal_oldest_age_seconds", 0) for s in timeline
        ),
        "seconds_from_mlflow_back_to_empty_journal": round(drained - back, 1) if drained else None,
        "replay_traces_per_s": round(replay, 1) if replay else None,
        "ingest_traces_per_s": ingest,
        "replay_over_ingest": round(replay / ingest, 1) if replay and ingest else None,
        "events": {k: round(v, 1) for k, v in events.items()},
    }


if __name__ == "__main__":
    raise SystemExit(main())
