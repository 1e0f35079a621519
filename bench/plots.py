"""PNG plots of a benchmark run (matplotlib, from the "bench" dependency group, Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt  # after use(): the backend must be chosen first

NAMES = {
    "direct": "direct",
    "litellm": "LiteLLM",
    "gw_full": "gateway full",
    "gw_litellm": "gateway→LiteLLM",
    "gw_floor": "gateway floor",
    "gw_httpx": "gateway full (httpx)",
    "exact_hit": "exact-cache hit",
    "semantic_hit": "semantic-cache hit",
}


def _distribution(ax: Any, series: dict[str, dict[str, Any]], title: str) -> None:
    for name, latency in series.items():
        quantiles = latency.get("quantiles")
        if not quantiles:
            continue
        steps = len(quantiles) - 1
        ax.plot([100 * i / steps for i in range(steps + 1)], quantiles, label=NAMES.get(name, name))
    ax.set_yscale("log")
    ax.set_xlabel("percentile")
    ax.set_ylabel("latency (ms, log)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)


def latency_plot(results: dict[str, Any], out: Path) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    for ax, conc in zip(axes, ("c1", "c64"), strict=True):
        series = {n: r[conc]["latency_ms"] for n, r in results["latency"].items()}
        for name, entry in results["cache"].items():
            if isinstance(entry, dict) and conc in entry:
                series[name] = entry[conc]["latency_ms"]
        _distribution(ax, series, f"latency distribution, 0 ms mock, concurrency {conc[1:]}")
    fig.tight_layout()
    path = out / "latency_distribution.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def rps_plot(results: dict[str, Any], out: Path) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    sustained = {n: e["best"]["rps"] for n, e in results["rps"].items()}
    cpu_bound = {n: r["c64"]["rps"] for n, r in results["latency"].items()}
    for ax, data, title in (
        (axes[0], sustained, "sustained RPS, 20 ms mock (p99 < 1 s, errors < 0.1 %)"),
        (axes[1], cpu_bound, "RPS at c=64, 0 ms mock (CPU-bound)"),
    ):
        labels = [NAMES.get(n, n) for n in data]
        bars = ax.bar(labels, list(data.values()), color="tab:blue")
        ax.bar_label(bars, fmt="%.0f", fontsize=8)
        ax.set_title(title)
        ax.set_ylabel("requests / s")
        ax.tick_params(axis="x", rotation=20, labelsize=8)
    fig.tight_layout()
    path = out / "rps.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def semantic_plot(results: dict[str, Any], out: Path) -> Path:
    quality = results["semantic_quality"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, figures in quality["embedders"].items():
        xs = [r["threshold"] for r in figures["curve"]]
        ax.plot(xs, [r["hit_rate"] for r in figures["curve"]], label=f"{name}: paraphrase hit")
        ax.plot(
            xs,
            [r["false_hit_rate"] for r in figures["curve"]],
            linestyle="--",
            label=f"{name}: false hit",
        )
        ax.axvline(
            figures["recommended"]["threshold"],
            color="green",
            alpha=0.5,
            label=f"lowest with no false hit ({figures['recommended']['threshold']:.2f})",
        )
    ax.axvline(
        quality["shipped_threshold"],
        color="red",
        alpha=0.5,
        label=f"shipped ({quality['shipped_threshold']})",
    )
    ax.set_xlabel("cosine threshold")
    ax.set_ylabel("rate")
    ax.set_title("semantic cache: hit rate vs false-hit rate")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / "semantic_threshold.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def soak_plot(soaks: list[dict[str, Any]], out: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for soak in soaks:
        xs = [t / 60 for t, _ in soak["samples"]]
        label = f"{soak.get('chain', 'full')} chain ({soak['slope_mb_per_min']:.2f} MB/min)"
        ax.plot(xs, [mb for _, mb in soak["samples"]], label=label)
    ax.set_xlabel("minutes under load")
    ax.set_ylabel("worker RSS (MB)")
    ax.set_title("memory soak, unique prompts")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / "soak.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def draw(
    results: dict[str, Any], out: Path, soaks: list[dict[str, Any]] | None = None
) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    made = [semantic_plot(results, out)]
    if results.get("latency"):
        made.append(latency_plot(results, out))
    if results.get("rps"):
        made.append(rps_plot(results, out))
    if soaks:
        made.append(soak_plot(soaks, out))
    return made
