"""`TraceRecord`: what the gateway remembers about one LLM call, before it reaches MLflow.

A record is a plain value: the request path builds it, the tracker queues it, the journal writes it
as one JSON line and the exporter turns it into an MLflow trace. `record_id` is the idempotency
key end to end: the exporter derives the MLflow trace id from it, so a replayed record lands on the
same trace instead of creating a second one.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

import orjson

TraceStatus = Literal["ok", "error"]
CacheTier = Literal["exact", "semantic"]


def new_record_id() -> str:
    return uuid.uuid4().hex


@dataclass(slots=True)
class TraceError:
    """The failure of a call: the exception class name and its message."""

    type: str
    message: str

    @classmethod
    def from_exception(cls, exc: BaseException) -> TraceError:
        return cls(type=type(exc).__name__, message=str(exc))


@dataclass(slots=True)
class TraceRecord:
    request_id: str
    user: str | None
    endpoint: str
    model_requested: str
    inputs: dict[str, Any]
    started_at_ns: int
    ended_at_ns: int
    status: TraceStatus = "ok"
    model_used: str | None = None
    outputs: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    cost: float | None = None
    latency_ms: float | None = None
    error: TraceError | None = None
    cache_tier: CacheTier | None = None
    stream: bool = False
    attempts: int = 1
    record_id: str = field(default_factory=new_record_id)

    def __post_init__(self) -> None:
        if self.latency_ms is None:
            self.latency_ms = round((self.ended_at_ns - self.started_at_ns) / 1e6, 3)
        if len(self.record_id) != 32 or any(c not in "0123456789abcdef" for c in self.record_id):
            # The exporter maps record_id onto a 128-bit trace id; anything else would not fit.
            raise ValueError(f"record_id must be 32 lowercase hex digits, got {self.record_id!r}")

    @property
    def trace_id(self) -> str:
        """The MLflow trace id: deterministic, so a replay lands on the same trace."""
        return f"tr-{self.record_id}"

    @property
    def duration_ns(self) -> int:
        return max(0, self.ended_at_ns - self.started_at_ns)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TraceRecord:
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        error = values.get("error")
        if isinstance(error, dict):
            values["error"] = TraceError(type=str(error["type"]), message=str(error["message"]))
        return cls(**values)

    @classmethod
    def from_json(cls, line: bytes | str) -> TraceRecord:
        data = orjson.loads(line)
        if not isinstance(data, dict):
            raise ValueError("a trace record must be a JSON object")
        return cls.from_dict(data)


def now_ns() -> int:
    """Wall-clock nanoseconds, the time base of MLflow span timestamps."""
    return time.time_ns()


__all__ = ["CacheTier", "TraceError", "TraceRecord", "TraceStatus", "new_record_id", "now_ns"]
