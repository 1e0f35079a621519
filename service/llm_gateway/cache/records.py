"""What one Qdrant point holds (`AnswerRecord`) and what a read gives back (`StoredAnswer`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class StoredAnswer:
    payload: dict[str, Any]
    created_at: float
    expires_at: float


@dataclass(frozen=True)
class AnswerRecord:
    """Everything written for one answer (the point's payload, before serialization)."""

    key: str
    scope: str
    model: str
    params_fingerprint: str
    context_fingerprint: str
    created_at: float
    expires_at: float
    payload: dict[str, Any]

    def as_payload(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "scope": self.scope,
            "model": self.model,
            "params_fingerprint": self.params_fingerprint,
            "context_fingerprint": self.context_fingerprint,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "payload": self.payload,
        }


def stored_answer(payload: dict[str, Any] | None) -> StoredAnswer | None:
    if not payload or "payload" not in payload:
        return None
    return StoredAnswer(
        payload=payload["payload"],
        created_at=float(payload["created_at"]),
        expires_at=float(payload["expires_at"]),
    )
