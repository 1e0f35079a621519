"""lower_current_thread_priority: a background thread runs at nice 19, the rest of the process
keeps its priority."""

from __future__ import annotations

import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from llm_gateway.thread_priority import LOWEST_PRIORITY, lower_current_thread_priority


def _own_nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread nice values are Linux's")
def test_only_the_calling_thread_is_lowered() -> None:
    before = _own_nice()
    with ThreadPoolExecutor(max_workers=1, initializer=lower_current_thread_priority) as pool:
        assert pool.submit(_own_nice).result() == LOWEST_PRIORITY
    assert _own_nice() == before
