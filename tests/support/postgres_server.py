"""A real PostgreSQL (Debian's package, devstack.postgres) for one test, on a free loopback port.

`make test` installs the package when it is missing; the server is never the system service.
Under root it runs as `postgres`, which cannot enter pytest's 0700 tmp tree, so the cluster gets
its own directory under /tmp; its log stays with the test's tmp_path.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from devstack.postgres import PostgresServer, PostgresUnavailable, find_postgres_bin

from tests.support.processes import free_port


@contextlib.contextmanager
def postgres_server(log_dir: Path) -> Iterator[PostgresServer]:
    """A server not started yet (the test starts it when it wants to); stopped at the end."""
    try:
        bin_dir = find_postgres_bin()
    except PostgresUnavailable as exc:
        pytest.fail(f"{exc} (the integration suite needs it)")
    with tempfile.TemporaryDirectory(prefix="llm-gateway-pg-") as cluster:
        server = PostgresServer(bin_dir, Path(cluster) / "data", free_port(), log_dir / "pg.log")
        try:
            yield server
        finally:
            server.stop()
