"""Worker slots: first free slot wins, a slot is freed when its holder dies, and reused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from llm_gateway.cache.slots import acquire_slot
from llm_gateway.errors import DependencyUnavailable

HOLDER = """
import sys
from pathlib import Path
import pytest

from llm_gateway.cache.slots import acquire_slot
from llm_gateway.errors import DependencyUnavailable
slot = acquire_slot(Path(sys.argv[1]))
print(slot.index, flush=True)
sys.stdin.read()  # hold the slot until the test kills us
"""


def test_a_slot_held_by_another_process_is_skipped_and_freed_when_it_dies(
    tmp_path: Path,
) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "0"
        mine = acquire_slot(tmp_path)
        assert mine.index == 1
        mine.release()
    finally:
        holder.kill()
        holder.wait(timeout=10)
        for stream in (holder.stdin, holder.stdout):
            if stream is not None:
                stream.close()
    reused = acquire_slot(tmp_path)
    assert reused.index == 0
    assert reused.path == tmp_path / "worker-0"
    reused.release()
    assert not reused.held


def test_a_released_slot_is_the_next_one_handed_out(tmp_path: Path) -> None:
    first, second = acquire_slot(tmp_path), acquire_slot(tmp_path)
    assert (first.index, second.index) == (0, 1)
    first.release()
    again = acquire_slot(tmp_path)
    assert again.index == 0
    again.release()
    second.release()


def test_when_every_slot_is_taken_the_cache_dependency_is_unavailable(tmp_path: Path) -> None:
    held = [acquire_slot(tmp_path, max_slots=2) for _ in range(2)]
    with pytest.raises(DependencyUnavailable, match="all 2 cache slots"):
        acquire_slot(tmp_path, max_slots=2)
    for slot in held:
        slot.release()
