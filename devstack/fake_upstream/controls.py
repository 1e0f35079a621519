"""What the fake upstream does next: runtime behaviour per model (or global) and request counts.

Tests steer the fake through `POST /_control` with one JSON object:

    {"model": "primary",                      # optional; absent = the global scope
     "latency_ms": 50,                        # delay before anything is answered
     "response_text": "...", "response_bytes": 1024,
     "stream_chunks": 5, "chunk_delay_ms": 10,
     "fault": {"kind": "status", "status": 429, "retry_after": "2", "count": 2},
     "fault": {"kind": "status", "status": 400, "code": "context_length_exceeded"},
     "fault": {"kind": "status", "status": 503, "count": -1, "every": 2},   # flapping
     "clear_faults": true}
    {"clear": true}                            # back to the start-up defaults, stats zeroed

Fault kinds (each applies to the next `count` matching requests; count -1 = every request):
`status` (answer `status` with an OpenAI-style error body, `Retry-After` when given), `reset`
(close the socket without a response), `stall` (`phase` "request": never answer; "headers": send
headers, never the body), and, for streaming requests only, `stream_stall`, `stream_cut`
(close the connection), `stream_malformed` (one chunk that is not JSON) after `after` chunks, and
`stream_no_done` (end without `data: [DONE]`). `refuse_prefix` answers 400 to a request whose
last message is the assistant's (a partial answer to continue) and lets every other request
through. `code` sets the error body's `error.code` (a provider's own, e.g. context_length_exceeded
or content_policy_violation); `every` N applies the fault to every Nth matching request only (a
flapping upstream). A model's own faults are used before global ones.

A request whose last message is the assistant's is a continuation: the answer is the rest of the
response text after that prefix (when the text starts with it), as a model continuing a prefill.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from typing import Any

REQUEST_FAULTS = frozenset({"status", "reset", "stall", "refuse_prefix"})
STREAM_FAULTS = frozenset({"stream_stall", "stream_cut", "stream_malformed", "stream_no_done"})
STALL_PHASES = frozenset({"request", "headers"})
SETTING_NAMES = ("latency_ms", "response_text", "response_bytes", "stream_chunks", "chunk_delay_ms")


class ControlError(ValueError):
    """A `/_control` document the fake cannot honour (answered with 400 and this message)."""


@dataclass
class Fault:
    kind: str
    count: int = 1
    status: int = 500
    retry_after: str | None = None
    message: str | None = None
    phase: str = "request"
    after: int = 1
    code: str | None = None
    every: int = 1
    seen: int = 0  # matching requests so far, for `every`

    def matches(self, stream: bool, prefixed: bool) -> bool:
        if self.kind == "refuse_prefix":
            return prefixed
        return self.kind in REQUEST_FAULTS or (stream and self.kind in STREAM_FAULTS)

    def due(self) -> bool:
        """Counts one matching request; True when this one gets the fault (`every` Nth)."""
        self.seen += 1
        return self.seen % self.every == 0

    @classmethod
    def parse(cls, raw: object) -> Fault:
        if not isinstance(raw, dict):
            raise ControlError("fault must be an object")
        unknown = set(raw) - {f.name for f in fields(cls)}
        if unknown:
            raise ControlError(f"unknown fault fields: {sorted(unknown)}")
        try:
            fault = cls(**raw)
        except TypeError as exc:
            raise ControlError(str(exc)) from None
        if fault.kind not in REQUEST_FAULTS | STREAM_FAULTS:
            raise ControlError(f"unknown fault kind {fault.kind!r}")
        if not isinstance(fault.count, int) or fault.count == 0 or fault.count < -1:
            raise ControlError("fault count must be a positive integer or -1 (always)")
        if not isinstance(fault.status, int) or not 100 <= fault.status <= 599:
            raise ControlError("fault status must be an HTTP status code")
        if fault.phase not in STALL_PHASES:
            raise ControlError(f"stall phase must be one of {sorted(STALL_PHASES)}")
        if not isinstance(fault.after, int) or fault.after < 0:
            raise ControlError("fault after must be a non-negative integer")
        if not isinstance(fault.every, int) or fault.every < 1:
            raise ControlError("fault every must be a positive integer")
        if fault.retry_after is not None:
            fault.retry_after = str(fault.retry_after)
        return fault


@dataclass
class Scope:
    """Settings of one scope; None inherits from the global scope."""

    latency_ms: float | None = None
    response_text: str | None = None
    response_bytes: int | None = None
    stream_chunks: int | None = None
    chunk_delay_ms: float | None = None
    faults: list[Fault] = field(default_factory=list)

    def take_fault(self, stream: bool, prefixed: bool = False) -> Fault | None:
        for index, fault in enumerate(self.faults):
            if fault.matches(stream, prefixed):
                if not fault.due():
                    return None
                if fault.count > 0:
                    fault.count -= 1
                    if fault.count == 0:
                        del self.faults[index]
                return fault
        return None


@dataclass(frozen=True)
class Behaviour:
    """The resolved plan for one request."""

    latency_ms: float
    response_text: str | None
    response_bytes: int | None
    stream_chunks: int
    chunk_delay_ms: float
    fault: Fault | None


class Controls:
    def __init__(self, *, latency_ms: float = 0.0, response_bytes: int | None = None) -> None:
        self._defaults = Scope(
            latency_ms=latency_ms, response_bytes=response_bytes, stream_chunks=3, chunk_delay_ms=0
        )
        self.clear()

    def clear(self) -> None:
        self.global_scope = Scope(**{n: getattr(self._defaults, n) for n in SETTING_NAMES})
        self.models: dict[str, Scope] = {}
        self.requests: Counter[str] = Counter()
        self.endpoints: Counter[str] = Counter()
        self.faults_applied = 0

    def apply(self, document: object) -> None:
        """Merge a `/_control` document; raises ControlError before changing anything."""
        if not isinstance(document, dict):
            raise ControlError("control document must be a JSON object")
        allowed = {"model", "fault", "clear", "clear_faults", *SETTING_NAMES}
        unknown = set(document) - allowed
        if unknown:
            raise ControlError(f"unknown control fields: {sorted(unknown)}")
        fault = Fault.parse(document["fault"]) if "fault" in document else None
        settings = {name: document[name] for name in SETTING_NAMES if name in document}
        for name in ("stream_chunks", "response_bytes"):
            value = settings.get(name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ControlError(f"{name} must be a positive integer or null")
        if document.get("clear"):
            self.clear()
        model = document.get("model")
        if model is not None and not isinstance(model, str):
            raise ControlError("model must be a string")
        scope = self.global_scope if model is None else self.models.setdefault(model, Scope())
        if document.get("clear_faults"):
            scope.faults.clear()
        for name, value in settings.items():
            setattr(scope, name, value)
        if fault is not None:
            scope.faults.append(fault)

    def resolve(self, model: str, stream: bool, prefixed: bool = False) -> Behaviour:
        """This request's plan; consumes one fault use (the model's own first)."""
        own = self.models.get(model)
        fault = own.take_fault(stream, prefixed) if own else None
        if fault is None:
            fault = self.global_scope.take_fault(stream, prefixed)
        if fault is not None:
            self.faults_applied += 1

        def pick(name: str) -> Any:
            value = getattr(own, name) if own else None
            return getattr(self.global_scope, name) if value is None else value

        return Behaviour(
            latency_ms=float(pick("latency_ms") or 0),
            response_text=pick("response_text"),
            response_bytes=pick("response_bytes"),
            stream_chunks=int(pick("stream_chunks") or 1),
            chunk_delay_ms=float(pick("chunk_delay_ms") or 0),
            fault=fault,
        )

    def count(self, model: str, endpoint: str) -> None:
        self.requests[model] += 1
        self.endpoints[endpoint] += 1

    def known_models(self) -> list[str]:
        return sorted({"fake-model", *self.models, *self.requests})

    def snapshot(self) -> dict[str, Any]:
        return {
            "global": asdict(self.global_scope),
            "models": {name: asdict(scope) for name, scope in self.models.items()},
        }

    def stats(self) -> dict[str, Any]:
        return {
            "total": sum(self.requests.values()),
            "models": dict(self.requests),
            "endpoints": dict(self.endpoints),
            "faults_applied": self.faults_applied,
        }
