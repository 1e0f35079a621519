"""Prometheus metrics, correct with several gunicorn workers.

Under gunicorn, `PROMETHEUS_MULTIPROC_DIR` is set by gunicorn_conf before any worker imports
prometheus_client, so each worker writes its samples to files there and `/metrics` merges them
(any worker can answer a scrape). Outside gunicorn a private registry serves one process.
Metric objects belong to a `Metrics` instance made by `create_app`, never to module globals,
so tests can build many apps in one process.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prometheus_multiprocess
from prometheus_client.mmap_dict import MmapedDict

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
TRACE_LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
BREAKER_STATE_VALUE = {"closed": 0, "half_open": 1, "open": 2}


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.multiprocess = multiprocess_dir() is not None
        r = self.registry
        self.http_requests = Counter(
            "http_requests_total",
            "HTTP requests answered, by route template and status.",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_latency = Histogram(
            "http_request_duration_seconds",
            "Time to answer an HTTP request (to the last body byte).",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.http_in_flight = Gauge(
            "http_requests_in_flight",
            "Requests being handled right now (open streams included).",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.upstream_latency = Histogram(
            "upstream_request_duration_seconds",
            "Time of one upstream attempt, by model and outcome.",
            ["model", "outcome"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.upstream_retries = Counter(
            "upstream_retries_total",
            "Upstream attempts retried, by model and the error that caused the retry.",
            ["model", "reason"],
            registry=r,
        )
        self.breaker_state = Gauge(
            "circuit_breaker_state",
            "Circuit state per upstream model: 0 closed, 1 half-open, 2 open (worst worker).",
            ["model"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.breaker_transitions = Counter(
            "circuit_breaker_transitions_total",
            "Circuit state changes, by model and new state.",
            ["model", "state"],
            registry=r,
        )
        self.cache_lookups = Counter(
            "cache_lookups_total",
            "Cache lookups by tier (exact, semantic) and result (hit, miss, error).",
            ["tier", "result"],
            registry=r,
        )
        self.prompt_rejections = Counter(
            "prompt_rejections_total",
            "Prompts refused by the guard, by rule.",
            ["rule"],
            registry=r,
        )
        self.rate_limited = Counter(
            "rate_limited_total",
            "Requests refused by a rate limit, by scope (user, ip, login).",
            ["scope"],
            registry=r,
        )
        self.rate_limit_storage_up = Gauge(
            "rate_limit_storage_up",
            "1 while the rate-limit store answers, 0 while it fails (worst worker).",
            registry=r,
            multiprocess_mode="livemin",
        )
        self.rate_limit_storage_failures = Counter(
            "rate_limit_storage_failures_total",
            "Requests that met a failing rate-limit store, by what they got "
            "(allowed: fail open, refused: fail closed).",
            ["outcome"],
            registry=r,
        )
        self.llm_tokens = Counter(
            "llm_tokens_total",
            "Tokens reported by the upstream, by model that answered and kind.",
            ["model", "kind"],
            registry=r,
        )
        self.traces = Counter(
            "traces_total",
            "LLM call traces by fate: exported, journaled, replayed, dropped.",
            ["outcome"],
            registry=r,
        )
        self.trace_export_failures = Counter(
            "trace_export_failures_total",
            "Failed uploads to MLflow, by kind: http_error, timeout, unreachable, garbage "
            "(200 but not an OTLP answer), rejected (records refused for good).",
            ["kind"],
            registry=r,
        )
        self.trace_export_lag = Histogram(
            "trace_export_lag_seconds",
            "From the end of an LLM call to MLflow acknowledging its trace (replays included).",
            buckets=TRACE_LAG_BUCKETS,
            registry=r,
        )
        # The journal directory is shared by a pod's workers, so each sees the same backlog:
        # the max over live workers is the pod's figure.
        self.trace_journal_backlog_bytes = Gauge(
            "trace_journal_backlog_bytes",
            "Bytes of traces waiting in the local journal for MLflow (all workers of the pod).",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.trace_journal_oldest_age = Gauge(
            "trace_journal_oldest_age_seconds",
            "Age of the oldest trace waiting in the local journal (0 when it is empty).",
            registry=r,
            multiprocess_mode="livemax",
        )

    def render(self) -> tuple[bytes, str]:
        if self.multiprocess:
            merged = CollectorRegistry()
            prometheus_multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
            return generate_latest(merged), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def live_gauge_by_worker(self, metric_name: str) -> dict[int, dict[str, float]]:
        """Each live worker's samples of a `live*` gauge: {pid: {first label value: value}}.

        Read from the multiprocess files, which hold every worker's value before /metrics merges
        them (a dead worker's files are removed by gunicorn_conf.child_exit). Every live worker
        is listed, with {} when it has no sample of this gauge (each worker owns live gauge
        files from its start: rate_limit_storage_up is set then). Outside multiprocess mode:
        this process's own samples.
        """
        directory = multiprocess_dir()
        if not self.multiprocess or directory is None:
            return {os.getpid(): self._own_gauge_samples(metric_name)}
        by_worker: dict[int, dict[str, float]] = {}
        for path in Path(directory).glob("gauge_live*_*.db"):
            pid = int(path.stem.rsplit("_", 1)[1])
            samples = by_worker.setdefault(pid, {})
            try:
                entries = list(MmapedDict.read_all_values_from_file(str(path)))  # type: ignore[no-untyped-call]
            except FileNotFoundError:  # the worker died between the glob and the read
                continue
            for key, value, _timestamp, _pos in entries:
                name, _sample, labels, _help = json.loads(key)
                if name == metric_name and labels:
                    samples[str(next(iter(labels.values())))] = value
        return by_worker

    def _own_gauge_samples(self, metric_name: str) -> dict[str, float]:
        samples: dict[str, float] = {}
        for metric in self.registry.collect():
            if metric.name != metric_name:
                continue
            for sample in metric.samples:
                if sample.labels:
                    samples[str(next(iter(sample.labels.values())))] = sample.value
        return samples
