"""What one Qdrant point holds (`AnswerRecord`), what a read gives back (`StoredAnswer`), and
what waits to be written (`PendingPoint`). No qdrant-client import here on purpose."""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

# The payload fields a semantic search must match exactly, in the order the stores' `search`
# takes them (the server store keyword-indexes them), so they are listed once for both.
KEYWORD_FIELDS = ("scope", "model", "params_fingerprint", "context_fingerprint")
# The payload field the embedded store indexes instead: which of 4096 buckets an answer's match
# partition (params and context fingerprint) falls in. Edge's keyword index keeps every value it
# has ever seen, so indexing the context fingerprint itself (new with almost every prompt) grew a
# worker's memory by ~0.3 KB per answer stored, without end; 4096 values bound it, and a shard of
# CACHE_MAX_ENTRIES=4000 answers has about one per bucket for a search to check in full.
PARTITION_FIELD = "partition"
_PARTITION_HEX = 3


def partition_bucket(params_fingerprint: str, context_fingerprint: str) -> str:
    digest = hashlib.sha256(f"{params_fingerprint}:{context_fingerprint}".encode()).hexdigest()
    return digest[:_PARTITION_HEX]


@dataclass(frozen=True)
class StoredAnswer:
    payload: dict[str, Any]
    created_at: float
    expires_at: float


@dataclass(frozen=True)
class AnswerRecord:
    """Everything written for one answer (the point's payload, before serialization).

    The answer itself is written as one JSON string (`payload_json`), not as a nested object:
    the tiers hand it back to the client as it is, so it is never parsed into a tree and
    serialized again. Points written by older versions carry the answer as an object under
    `payload`; both are read.
    """

    key: str
    scope: str
    model: str
    params_fingerprint: str
    context_fingerprint: str
    created_at: float
    expires_at: float
    payload: dict[str, Any] | str  # str: already serialized JSON

    def as_payload(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "scope": self.scope,
            "model": self.model,
            "params_fingerprint": self.params_fingerprint,
            "context_fingerprint": self.context_fingerprint,
            PARTITION_FIELD: partition_bucket(self.params_fingerprint, self.context_fingerprint),
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "payload_json": self.payload
            if isinstance(self.payload, str)
            else orjson.dumps(self.payload).decode(),
        }


def answer_body(point_payload: dict[str, Any]) -> bytes | None:
    """The stored answer as JSON bytes, from either way a point may carry it."""
    if isinstance(point_payload.get("payload_json"), str):
        return str(point_payload["payload_json"]).encode()
    if isinstance(point_payload.get("payload"), dict):
        return orjson.dumps(point_payload["payload"])
    return None


def stored_answer(point_payload: dict[str, Any] | None) -> StoredAnswer | None:
    body = answer_body(point_payload) if point_payload else None
    if point_payload is None or body is None:
        return None
    return StoredAnswer(
        payload=orjson.loads(body),
        created_at=float(point_payload["created_at"]),
        expires_at=float(point_payload["expires_at"]),
    )


# A slot number on the embedded store (point_slots.py), uuid5 of the exact key on a server.
PointId = int | str

# Which store holds the answers: the embedded Edge shard or a Qdrant server.
StoreMode = Literal["edge", "server"]


@dataclass(frozen=True, slots=True)
class PendingPoint:
    """One answer waiting to be written: its point id, prompt vector and record.

    The vector is kept as float32, Qdrant's own precision: 2 KB for 512 dimensions, where a list
    of Python floats is 16 KB. Under load the queue may hold thousands of these (write_behind.py).
    """

    point_id: PointId
    vector: array[float]  # typecode "f": float32
    record: AnswerRecord

    @classmethod
    def of(cls, point_id: PointId, vector: Sequence[float], record: AnswerRecord) -> PendingPoint:
        return cls(point_id, array("f", vector), record)
