"""`BacklogWatch`: makes the journal's backlog visible, as gauges and as state-change log lines.

Every look (the replay loop's tick, a health check) sets `trace_journal_backlog_bytes` and
`trace_journal_oldest_age_seconds`. Crossing TRACE_BACKLOG_WARN_BYTES upwards logs one WARNING
`trace_backlog_high`; falling back under it logs one INFO `trace_backlog_normal`: state changes,
never a line per trace or per look. The journal's own bound (TRACE_JOURNAL_MAX_BYTES x
TRACE_JOURNAL_MAX_FILES per worker) is where records start to be dropped; the threshold should sit
well below it so the warning comes while there is still time to act.
"""

from __future__ import annotations

import logging
from typing import Any

from llm_gateway.observability.metrics import Metrics
from llm_gateway.tracking.journal import TraceJournal

log = logging.getLogger(__name__)


class BacklogWatch:
    def __init__(self, journal: TraceJournal, metrics: Metrics | None, warn_bytes: int) -> None:
        self.journal = journal
        self.metrics = metrics
        self.warn_bytes = warn_bytes
        self.high = False

    def look(self) -> dict[str, Any]:
        """Read the backlog (blocking: call it in a thread), publish it, log a state change."""
        backlog = self.journal.backlog()
        if self.metrics is not None:
            self.metrics.trace_journal_backlog_bytes.set(backlog["bytes"])
            self.metrics.trace_journal_oldest_age.set(backlog["oldest_age_seconds"])
        high = backlog["bytes"] >= self.warn_bytes
        if high != self.high:
            self.high = high
            fields = {**backlog, "warn_bytes": self.warn_bytes, "bound_bytes": self.bound_bytes}
            if high:
                log.warning(
                    "trace_backlog_high",
                    extra={
                        **fields,
                        "detail": "MLflow is not keeping up or is down; traces wait in the "
                        "journal and are dropped past bound_bytes",
                    },
                )
            else:
                log.info("trace_backlog_normal", extra=fields)
        return backlog

    @property
    def bound_bytes(self) -> int:
        """Bytes one worker's journal holds before it drops its oldest file."""
        return self.journal.max_bytes * self.journal.max_files


__all__ = ["BacklogWatch"]
