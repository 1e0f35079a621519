"""In-memory semantic index for the embedded store, partitioned by what a match must share.

A semantic match may only come from answers with the same scope, model, params and
conversation context, so this index keeps the vectors grouped by that partition key and searches
only the caller's partition: one float32 mat-vec over a few rows, in the worker's memory. That is
cheaper than asking even an in-process store (Qdrant Edge builds its filter, searches and hands
back a payload to decode); the worker's shard is the index's persistent copy.

The index is keyed by the exact key of each answer, so a match leads straight to the worker's
answer table (lru.py), which holds the payload; the worker's Edge shard is their persistent
copy, read once at startup to rebuild both. Entries leave with their answer: `remove` when the
table evicts it, `drop_expired` on the periodic purge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

# Most partitions hold one or a few points (prompts with their own numbers get their own
# partition), so they start with one column and grow by doubling.
_INITIAL_ROWS = 1


def partition_key(params_fingerprint: str, context_fingerprint: str) -> str:
    # The params fingerprint already covers scope and model.
    return f"{params_fingerprint}:{context_fingerprint}"


@dataclass
class _Partition:
    dimensions: int
    max_rows: int
    ids: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    # One column per point (dimensions x capacity): a query reads only the rows of the
    # dimensions where it is non-zero, which for a hashed prompt is a small share of them.
    vectors: npt.NDArray[np.float32] = field(init=False)
    expires: npt.NDArray[np.float64] = field(init=False)

    def __post_init__(self) -> None:
        self.vectors = np.zeros((self.dimensions, _INITIAL_ROWS), dtype=np.float32)
        self.expires = np.zeros(_INITIAL_ROWS, dtype=np.float64)

    def put(self, point_id: str, vector: npt.NDArray[np.float32], expires_at: float) -> None:
        row = self.rows.get(point_id)
        if row is None:
            row = len(self.ids)
            capacity = self.vectors.shape[1]
            if row == capacity:  # grow by doubling, never past the cache's bound
                extra = max(1, min(capacity, self.max_rows - capacity))
                self.vectors = np.concatenate(
                    [self.vectors, np.zeros((self.dimensions, extra), np.float32)], axis=1
                )
                self.expires = np.concatenate([self.expires, np.zeros(extra)])
            self.ids.append(point_id)
            self.rows[point_id] = row
        self.vectors[:, row] = vector
        self.expires[row] = expires_at

    def remove(self, point_id: str) -> None:
        """Drop one point in O(1): the last row moves into its place."""
        row = self.rows.pop(point_id)
        last = len(self.ids) - 1
        if row != last:
            moved = self.ids[last]
            self.ids[row] = moved
            self.rows[moved] = row
            self.vectors[:, row] = self.vectors[:, last]
            self.expires[row] = self.expires[last]
        self.ids.pop()

    def drop_expired(self, now: float) -> list[str]:
        size = len(self.ids)
        live = self.expires[:size] > now
        if live.all():
            return []
        dropped = [pid for pid, keep in zip(self.ids, live, strict=True) if not keep]
        self.ids = [pid for pid, keep in zip(self.ids, live, strict=True) if keep]
        self.rows = {pid: row for row, pid in enumerate(self.ids)}
        kept = len(self.ids)
        self.vectors[:, :kept] = self.vectors[:, :size][:, live]
        self.expires[:kept] = self.expires[:size][live]
        return dropped


class SemanticIndex:
    def __init__(self, dimensions: int, max_rows: int = 1 << 30) -> None:
        self.dimensions = dimensions
        self._max_rows = max_rows
        self._partitions: dict[str, _Partition] = {}
        self._partition_of: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._partition_of)

    def __contains__(self, point_id: str) -> bool:
        return point_id in self._partition_of

    def put(
        self, partition: str, point_id: str, vector: Sequence[float], expires_at: float
    ) -> None:
        array = np.asarray(vector, dtype=np.float32)
        if array.shape != (self.dimensions,):
            raise ValueError(f"vector has shape {array.shape}, index needs {self.dimensions}")
        norm = float(np.linalg.norm(array))
        if norm > 0:
            array = array / norm
        if self._partition_of.get(point_id, partition) != partition:
            self.remove(point_id)
        part = self._partitions.get(partition)
        if part is None:
            part = self._partitions[partition] = _Partition(self.dimensions, self._max_rows)
        part.put(point_id, array, expires_at)
        self._partition_of[point_id] = partition

    def remove(self, point_id: str) -> None:
        """Forget a point (no-op when absent)."""
        partition = self._partition_of.pop(point_id, None)
        if partition is None:
            return
        part = self._partitions[partition]
        part.remove(point_id)
        if not part.ids:
            del self._partitions[partition]

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
        query = query / norm
        # einsum, not `@`: BLAS would hand this small mat-vec to its thread pool, whose spinning
        # threads fight the event loop for the pod's cores and make p99 latency erratic.
        # A hashed prompt is non-zero in a few dozen of 512 dimensions: only those rows are read
        # (the scan over every cached point was most of a miss's CPU as the cache filled).
        dims = np.flatnonzero(query)
        if 2 * len(dims) < self.dimensions:
            scores = np.einsum("ij,i->j", part.vectors[dims, :size], query[dims])
        else:
            scores = np.einsum("ij,i->j", part.vectors[:, :size], query)
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
        for point_id in dropped:
            del self._partition_of[point_id]
        return dropped
