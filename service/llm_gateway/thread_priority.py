"""Threads that do work nobody is waiting on give the core to the event loop first.

A worker's event loop answers requests. A few threads do background work: Qdrant local's
writer persists cached answers, point by point, to SQLite. On a busy core the kernel hands such
a thread whole time slices, and every request arriving meanwhile waits for one to end: with the
cache's writes on their thread at normal priority, the gateway's p99 at concurrency 1 was about
2.5x its p99 with those writes held back (bench/analysis.md). At the lowest priority (nice 19)
the thread runs in the loop's idle time and the kernel preempts it as soon as the loop wakes.

Under sustained overload such a thread may not run at all; what it serves must tolerate that
(the write-behind queue is bounded and reports what it drops).
"""

from __future__ import annotations

import logging
import os
import sys
import threading

log = logging.getLogger(__name__)

LOWEST_PRIORITY = 19


def lower_current_thread_priority() -> bool:
    """Run the calling thread at the lowest CPU priority; False where that is not possible."""
    # Linux keeps a nice value per thread, so setpriority on a thread id changes only that
    # thread. Elsewhere PRIO_PROCESS names a whole process: leave it alone.
    if sys.platform != "linux":
        return False
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LOWEST_PRIORITY)
    except OSError as exc:  # a seccomp profile may refuse it; the thread still works
        log.warning("thread_priority_unchanged", extra={"error": str(exc)})
        return False
    return True
