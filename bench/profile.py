"""Sample the gateway's worker with py-spy while the load generator drives scenario 3 (c=64).

py-spy (the "bench" dependency group) attaches to the running worker from outside, so the
service runs unmodified. It runs pinned next to the load generator, not on the server's core.
The collapsed stacks are reduced to: the part of the system that owns each sample (the
innermost recognised frame: where the time is really spent), the inclusive share per part (what
the samples were under; wrappers such as middleware include everything below them), and the
leaf frames (self time).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from bench.stack import LOADGEN_CPU, ROOT

if TYPE_CHECKING:
    from bench.stack import Gateway


class LoadDriver(Protocol):
    """What the profiler needs of the bench run (bench.run.Bench): load on one target while
    py-spy samples, without this module importing the run that imports it."""

    def measure(self, target: str, concurrency: int, **extra: Any) -> Any: ...


# Which part of the system a frame's file belongs to (first match wins; order matters).
AREAS = (
    ("llm_gateway/cache", "gateway: cache (exact+semantic, Qdrant Edge)"),
    ("qdrant_client", "qdrant-client (server store)"),
    ("llm_gateway/tracking", "gateway: tracking journal"),
    ("mlflow", "mlflow-tracing"),
    ("llm_gateway/guard", "gateway: guard"),
    ("llm_gateway/ratelimit", "gateway: rate limit"),
    ("limits/", "limits library"),
    ("llm_gateway/auth", "gateway: auth (JWT)"),
    ("jwt/", "PyJWT"),
    ("llm_gateway/middleware", "gateway: middleware"),
    ("llm_gateway/observability", "gateway: logging/metrics/telemetry"),
    # py-spy shortens paths: OpenTelemetry shows as asgi/__init__.py, trace/__init__.py, ...
    ("opentelemetry", "OpenTelemetry"),
    ("OpenTelemetry", "OpenTelemetry"),
    ("asgi/__init__.py", "OpenTelemetry"),
    ("trace/__init__.py", "OpenTelemetry"),
    ("instrumentation/", "OpenTelemetry"),
    ("prometheus_client", "prometheus-client"),
    ("logging/", "stdlib logging"),
    ("llm_gateway/upstream", "gateway: upstream client"),
    ("httpx", "httpx"),
    ("aiohttp", "aiohttp"),
    ("fastapi", "FastAPI (routing, deps, validation)"),
    ("pydantic", "pydantic"),
    ("starlette", "Starlette"),
    ("uvicorn", "uvicorn (HTTP server)"),
    ("asyncio", "asyncio event loop"),
)


def parse_collapsed(text: str) -> list[tuple[list[str], int]]:
    stacks = []
    for line in text.splitlines():
        frames, _, count = line.rpartition(" ")
        if frames and count.isdigit():
            stacks.append((frames.split(";"), int(count)))
    return stacks


def area(frame: str) -> str | None:
    for marker, name in AREAS:
        if marker in frame:
            return name
    return None


def summarise(stacks: list[tuple[list[str], int]], top: int = 25) -> dict[str, Any]:
    total = sum(count for _, count in stacks) or 1
    leaf: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    innermost: Counter[str] = Counter()
    for frames, count in stacks:
        leaf[frames[-1]] += count
        # The innermost recognised part owns the sample: where the time is actually spent.
        owner = next((a for a in map(area, reversed(frames)) if a is not None), "other")
        innermost[owner] += count
        for frame in set(frames):
            inclusive[frame] += count
        for name in {a for a in map(area, frames) if a is not None}:
            areas[name] += count
    as_share = lambda counter: [  # noqa: E731 - a local formatter
        {"frame": frame, "share": n / total} for frame, n in counter.most_common(top)
    ]
    return {
        "samples": total,
        "self": as_share(leaf),
        "inclusive": as_share(inclusive),
        "areas": [{"area": a, "share": n / total} for a, n in areas.most_common()],
        "owners": [{"area": a, "share": n / total} for a, n in innermost.most_common()],
    }


def record(gateway: Gateway, bench: LoadDriver, seconds: float, target: str) -> dict[str, Any]:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        return {"error": "py-spy not installed (uv sync --group bench)"}
    [worker] = gateway.workers()
    out = ROOT / "bench" / ".work" / f"profile-{target}.collapsed"
    argv = [py_spy, "record", "--pid", str(worker), "--duration", str(int(seconds))]
    argv += ["--rate", "250", "--format", "raw", "--output", str(out), "--nonblocking", "--gil"]
    taskset = shutil.which("taskset")
    if taskset:
        argv = [taskset, "-c", str(LOADGEN_CPU), *argv]
    spy = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    load = bench.measure(target, 64, duration=seconds + 1, warmup=0.5)
    _, err = spy.communicate(timeout=seconds + 30)
    if spy.returncode != 0 or not out.exists():
        return {"error": f"py-spy failed: {err.decode(errors='replace')[-500:]}"}
    summary = summarise(parse_collapsed(out.read_text()))
    summary["target"] = target
    summary["load"] = {"rps": load["rps"], "p99_ms": load["latency_ms"].get("p99")}
    return summary
