"""In-memory semantic index for Qdrant local mode, partitioned by what a match must share.

Qdrant's local mode searches by brute force in Python/numpy: each query re-normalises every
stored vector, and a payload filter is checked point by point in Python, so a filtered search
costs milliseconds per thousand points. A semantic match may only come from points with the same
scope, model, params and conversation context anyway, so this index keeps the vectors grouped by
that partition key and searches only the caller's partition: one float32 mat-vec over a few rows.

Local mode's folder stays the source of truth (this index is rebuilt from it at startup and
updated after each write), and the payload of a match is still read from Qdrant by id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

_INITIAL_ROWS = 8


def partition_key(params_fingerprint: str, context_fingerprint: str) -> str:
    # The params fingerprint already covers scope and model.
    return f"{params_fingerprint}:{context_fingerprint}"


@dataclass
class _Partition:
    dimensions: int
    ids: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    vectors: npt.NDArray[np.float32] = field(init=False)
    expires: npt.NDArray[np.float64] = field(init=False)

    def __post_init__(self) -> None:
        self.vectors = np.zeros((_INITIAL_ROWS, self.dimensions), dtype=np.float32)
        self.expires = np.zeros(_INITIAL_ROWS, dtype=np.float64)

    def put(self, point_id: str, vector: npt.NDArray[np.float32], expires_at: float) -> None:
        row = self.rows.get(point_id)
        if row is None:
            row = len(self.ids)
            if row == len(self.vectors):  # grow by doubling
                self.vectors = np.concatenate([self.vectors, np.zeros_like(self.vectors)])
                self.expires = np.concatenate([self.expires, np.zeros_like(self.expires)])
            self.ids.append(point_id)
            self.rows[point_id] = row
        self.vectors[row] = vector
        self.expires[row] = expires_at

    def drop_expired(self, now: float) -> list[str]:
        size = len(self.ids)
        live = self.expires[:size] > now
        if live.all():
            return []
        dropped = [pid for pid, keep in zip(self.ids, live, strict=True) if not keep]
        self.ids = [pid for pid, keep in zip(self.ids, live, strict=True) if keep]
        self.rows = {pid: row for row, pid in enumerate(self.ids)}
        kept = len(self.ids)
        self.vectors[:kept] = self.vectors[:size][live]
        self.expires[:kept] = self.expires[:size][live]
        return dropped


class SemanticIndex:
    def __init__(self, dimensions: int) -> None:
        self.dimensions = dimensions
        self._partitions: dict[str, _Partition] = {}

    def __len__(self) -> int:
        return sum(len(partition.ids) for partition in self._partitions.values())

    def put(
        self, partition: str, point_id: str, vector: Sequence[float], expires_at: float
    ) -> None:
        array = np.asarray(vector, dtype=np.float32)
        if array.shape != (self.dimensions,):
            raise ValueError(f"vector has shape {array.shape}, index needs {self.dimensions}")
        norm = float(np.linalg.norm(array))
        if norm > 0:
            array = array / norm
        part = self._partitions.get(partition)
        if part is None:
            part = self._partitions[partition] = _Partition(self.dimensions)
        part.put(point_id, array, expires_at)

    def best(
        self, partition: str, vector: Sequence[float], *, now: float, threshold: float
    ) -> tuple[str, float] | None:
        """(point id, cosine) of the most similar live point at or above the threshold."""
        part = self._partitions.get(partition)
        if part is None or not part.ids:
            return None
        size = len(part.ids)
        query = np.asarray(vector, dtype=np.float32)
        norm = float(np.linalg.norm(query))
        if norm == 0:
            return None
        # einsum, not `@`: BLAS would hand this small mat-vec to its thread pool, whose spinning
        # threads fight the event loop for the pod's cores and make p99 latency erratic.
        scores = np.einsum("ij,j->i", part.vectors[:size], query / norm)
        scores[part.expires[:size] <= now] = -np.inf
        row = int(np.argmax(scores))
        score = float(scores[row])
        return (part.ids[row], score) if score >= threshold else None

    def drop_expired(self, now: float) -> list[str]:
        """Remove expired points; returns their ids (to delete from the store)."""
        dropped: list[str] = []
        for key in list(self._partitions):
            part = self._partitions[key]
            dropped.extend(part.drop_expired(now))
            if not part.ids:
                del self._partitions[key]
        return dropped
