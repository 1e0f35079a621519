"""A local PostgreSQL server (Debian's `postgresql` package) for MLflow's backend store.

Used by `make run MLFLOW_BACKEND=postgres`, the integration tests and bench/trace_export: initdb
in a data directory on first use, then `postgres` on a loopback port; stop() shuts it down fast.
Authentication is `trust` on 127.0.0.1 only (a developer's and a test's database, never exposed).

Debian keeps the server binaries in /usr/lib/postgresql/<version>/bin, not on PATH. PostgreSQL
refuses to run as root, so under root (a container, CI) it runs as the `postgres` user the
package creates, which must be able to reach the data directory (see `_make_reachable`).

CLI::

    python -m devstack.postgres serve --data data/postgres --port 5432
"""

from __future__ import annotations

import argparse
import os
import pwd
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

POSTGRES_LIB = Path("/usr/lib/postgresql")
SUPERUSER = "mlflow"
SYSTEM_USER = "postgres"


class PostgresUnavailable(RuntimeError):
    """Postgres cannot be started here; the message says what to install or change."""


def find_postgres_bin() -> Path:
    """The newest /usr/lib/postgresql/<version>/bin holding `postgres` and `initdb`."""
    versions = sorted(
        (p for p in POSTGRES_LIB.glob("*/bin") if (p / "postgres").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not versions:
        raise PostgresUnavailable(
            f"no PostgreSQL server under {POSTGRES_LIB}: install Debian's `postgresql` package "
            "(apt-get install postgresql), or use the default sqlite backend"
        )
    return versions[-1]


def _run_as() -> tuple[list[str], pwd.struct_passwd | None]:
    """A command prefix that drops root to the `postgres` user (empty when not root)."""
    if os.geteuid() != 0:
        return [], None
    try:
        account = pwd.getpwnam(SYSTEM_USER)
    except KeyError as exc:
        raise PostgresUnavailable(
            f"running as root and there is no {SYSTEM_USER!r} user to run PostgreSQL as"
        ) from exc
    prefix = ["setpriv", f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}", "--clear-groups"]
    return prefix, account


def _make_reachable(path: Path, account: pwd.struct_passwd) -> None:
    # The unprivileged server must traverse every ancestor of its data directory (a
    # TemporaryDirectory is 0700): add search permission only, never read. Not for a directory
    # someone else keeps resetting (pytest makes /tmp/pytest-of-root 0700 at every session
    # start): tests put the cluster in its own directory under /tmp instead.
    for ancestor in reversed(path.parents):
        mode = ancestor.stat().st_mode
        if not mode & stat.S_IXOTH:
            ancestor.chmod(mode | stat.S_IXOTH)
    os.chown(path, account.pw_uid, account.pw_gid)


class PostgresServer:
    """One PostgreSQL cluster in `data_dir`, listening on 127.0.0.1:`port`."""

    def __init__(self, bin_dir: Path, data_dir: Path, port: int, log_path: Path) -> None:
        self.bin_dir = bin_dir
        self.data_dir = data_dir.resolve()
        self.port = port
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None
        self._prefix, self._account = _run_as()

    @property
    def proc(self) -> subprocess.Popen[bytes]:
        if self._proc is None:
            raise RuntimeError("postgres was not started")
        return self._proc

    def _initdb(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._account is not None:
            _make_reachable(self.data_dir, self._account)
        done = subprocess.run(  # noqa: S603 - fixed argv
            [
                *self._prefix,
                str(self.bin_dir / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",  # a dev/test cluster: skip fsync of the template files
            ],
            check=False,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise PostgresUnavailable(
                f"initdb {self.data_dir} failed ({done.returncode}): {done.stderr.strip()[-500:]}"
            )

    def start(self, timeout: float = 60.0) -> None:
        """initdb if the directory is new, start the server, wait until it accepts connections."""
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(  # noqa: S603 - fixed argv
                [
                    *self._prefix,
                    str(self.bin_dir / "postgres"),
                    "-D",
                    str(self.data_dir),
                    "-p",
                    str(self.port),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    f"unix_socket_directories={self.data_dir}",
                    "-c",
                    "max_connections=200",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while not self._accepts():
            if self._proc.poll() is not None:
                raise PostgresUnavailable(
                    f"postgres exited with status {self._proc.returncode}; see {self.log_path}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise PostgresUnavailable(
                    f"postgres not ready within {timeout}s; see {self.log_path}"
                )
            time.sleep(0.2)

    def _accepts(self) -> bool:
        ready = subprocess.run(  # noqa: S603 - fixed argv
            [str(self.bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"],
            check=False,
        )
        return ready.returncode == 0

    def url(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create `name` (a plain identifier) unless it exists; returns its SQLAlchemy URL."""
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            raise ValueError(f"database name must be a lowercase identifier, got {name!r}")
        psql = [
            str(self.bin_dir / "psql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            SUPERUSER,
        ]
        exists = subprocess.run(  # noqa: S603 - fixed argv
            [
                *psql,
                "-d",
                "postgres",
                "-tAc",
                f"SELECT 1 FROM pg_database WHERE datname = '{name}'",  # noqa: S608 - checked above,
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        if exists.stdout.strip() != "1":
            subprocess.run(  # noqa: S603 - fixed argv
                [*psql, "-d", "postgres", "-c", f'CREATE DATABASE "{name}"'],
                check=True,
                capture_output=True,
            )
        return self.url(name)

    def stop(self, timeout: float = 30.0) -> int | None:
        """Fast shutdown (SIGINT: roll back open transactions, checkpoint, exit)."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        return proc.returncode


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.postgres")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run postgres in the foreground")
    serve.add_argument("--data", type=Path, default=Path("data/postgres"))
    serve.add_argument("--port", type=int, default=5432)
    args = parser.parse_args(argv)
    server = PostgresServer(
        find_postgres_bin(), args.data, args.port, args.data.parent / "postgres.log"
    )
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    server.start()
    sys.stdout.write(f"postgres ready: {server.create_database('mlflow')}\n")
    sys.stdout.flush()
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
