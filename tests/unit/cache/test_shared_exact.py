"""The pod's shared exact table on a real SQLite file: several connections, bound, TTL, order."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from llm_gateway.cache.shared_exact import SharedExactTable

NOW = 1_700_000_000.0
TableFactory = Callable[..., SharedExactTable]


@pytest.fixture
def open_table(tmp_path: Path) -> Iterator[TableFactory]:
    opened: list[SharedExactTable] = []

    def build(max_entries: int = 3, now: float = NOW) -> SharedExactTable:
        table = SharedExactTable(tmp_path, max_entries=max_entries, busy_timeout=1.0)
        table.open(now)
        opened.append(table)
        return table

    yield build
    for table in opened:
        table.close()


def test_what_one_connection_writes_another_reads(open_table: TableFactory) -> None:
    writer, reader = open_table(), open_table()
    writer.put("k", b'{"a": 1}', NOW, NOW + 60)
    assert reader.get("k", NOW + 1) == (b'{"a": 1}', NOW, NOW + 60)
    assert reader.get("k", NOW + 60) is None  # expired: never served
    assert reader.get("missing", NOW) is None


def test_replacing_an_answer_keeps_the_count_right(open_table: TableFactory) -> None:
    table = open_table()
    for n in range(3):
        table.put("same", str(n).encode(), NOW + n, NOW + 60)
    assert len(table) == 1
    assert table.get("same", NOW) == (b"2", NOW + 2, NOW + 60)


def test_past_the_bound_the_least_recently_used_leaves(
    open_table: TableFactory,
) -> None:
    table = open_table(max_entries=2)
    table.put("a", b"A", NOW, NOW + 60)
    table.put("b", b"B", NOW + 1, NOW + 60)
    table.touch("a", NOW + 2)  # served: written with the next put
    table.put("c", b"C", NOW + 3, NOW + 60)
    assert len(table) == 2
    assert table.get("b", NOW + 4) is None
    assert table.get("a", NOW + 4) is not None
    assert table.get("c", NOW + 4) is not None


def test_opening_drops_expired_answers_and_trims_to_a_smaller_bound(
    open_table: TableFactory,
) -> None:
    first = open_table(max_entries=10)
    first.put("expired", b"x", NOW, NOW + 5)
    for n in range(4):
        first.put(f"k{n}", b"v", NOW + n, NOW + 600)
    first.close()
    second = open_table(max_entries=2, now=NOW + 10)
    assert len(second) == 2
    assert [second.get(f"k{n}", NOW + 10) is not None for n in range(4)] == [
        False,
        False,
        True,
        True,
    ]


def test_purge_removes_only_expired_answers(open_table: TableFactory) -> None:
    table = open_table()
    table.put("short", b"s", NOW, NOW + 5)
    table.put("long", b"l", NOW, NOW + 500)
    assert table.purge_expired(NOW + 10) == 1
    assert len(table) == 1
