"""MLflow's store-init container: wait for the database, then create or check MLflow's schema,
one replica at a time.

Every MLflow server creates the tables (and runs the alembic migrations) of an empty database
when it starts. Two replicas starting together on an empty PostgreSQL race: both see no tables,
and the second fails with a unique violation on pg_type (measured: the loser of 3 in 3 starts
exited 1), so its pod restarts until the winner has finished. MLflow's own guard is a file lock,
which holds within one pod only. This container takes a PostgreSQL advisory lock instead, held
by its session (released on exit, even a crash), and builds the store under it: the first
replica creates the schema, the next ones find it and only check it. The server that starts
after it finds the schema complete and creates nothing.

Environment:
  MLFLOW_BACKEND_STORE_URI   the SQLAlchemy URL (the password may come from PGPASSWORD instead)
  MLFLOW_STORE_WAIT_SECONDS  longest wait for the database to accept MLflow's login (300)

Exit status 0 when the schema is current; 1 (with one line saying why) when the database never
answered, the image lacks the driver, or the schema needs `mlflow db upgrade`. The URL is only
ever printed with its password hidden.
"""

from __future__ import annotations

import os
import sys
import time

# The chart mounts the store at /mlflow; nothing is written there by this container.
ARTIFACT_ROOT = "/mlflow/artifacts"
# pg_advisory_lock key shared by every replica of every release on the database: "mlfl".
LOCK_KEY = 0x6D6C666C
RETRY_SECONDS = 2.0


def say(message: str) -> None:
    sys.stderr.write(f"store-init: {message}\n")
    sys.stderr.flush()


def first_line(error: BaseException) -> str:
    """The driver's own reason (e.g. 'connection refused'), without SQLAlchemy's SQL and links."""
    origin = getattr(error, "orig", None) or error
    lines = [line.strip() for line in str(origin).splitlines() if line.strip()]
    return lines[0] if lines else type(origin).__name__


def main() -> int:
    uri = os.environ.get("MLFLOW_BACKEND_STORE_URI", "")
    if not uri:
        say("MLFLOW_BACKEND_STORE_URI is not set")
        return 1
    wait_seconds = float(os.environ.get("MLFLOW_STORE_WAIT_SECONDS", "300"))
    # libpq's own bound on one connection attempt (an unroutable address would take minutes).
    os.environ.setdefault("PGCONNECT_TIMEOUT", "5")

    import sqlalchemy
    from sqlalchemy.pool import NullPool

    url = sqlalchemy.engine.make_url(uri)
    shown = url.render_as_string(hide_password=True)
    try:
        engine = sqlalchemy.create_engine(url, poolclass=NullPool)
    except ImportError as missing:
        say(
            f"the image cannot reach {url.get_backend_name()}: {missing}. MLflow's plain image "
            "has no PostgreSQL driver: use its -full variant (mlflow.image.databaseTag) or an "
            "image with psycopg"
        )
        return 1

    started = time.monotonic()
    reason = ""
    while True:
        try:
            connection = engine.connect()
            break
        except sqlalchemy.exc.OperationalError as error:
            now = first_line(error)
            if now != reason:
                say(f"waiting for {shown}: {now}")
                reason = now
            if time.monotonic() - started > wait_seconds:
                say(f"{shown} did not accept MLflow's login within {wait_seconds:.0f}s: {reason}")
                return 1
            time.sleep(RETRY_SECONDS)
    waited = time.monotonic() - started
    say(f"{shown} answered after {waited:.1f}s")

    # Imported before the lock is taken: the import is most of this container's time.
    from mlflow.exceptions import MlflowException
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    with connection:
        if engine.dialect.name == "postgresql":
            locking = time.monotonic()
            connection.exec_driver_sql(f"SELECT pg_advisory_lock({LOCK_KEY})")
            say(f"holding the schema lock (waited {time.monotonic() - locking:.1f}s for it)")
        else:
            say(f"no cross-replica lock on {engine.dialect.name}: start one replica first")
        existed = "experiments" in sqlalchemy.inspect(connection).get_table_names()
        # The lock is the session's, not the transaction's: end the transaction, so this session
        # holds no snapshot while the migrations run in the store's own connections.
        connection.commit()
        building = time.monotonic()
        try:
            # Creates the tables and runs the migrations on an empty database; on an existing
            # one, checks that its schema is MLflow's current one.
            SqlAlchemyStore(uri, ARTIFACT_ROOT)
        except MlflowException as error:
            say(f"MLflow refuses the schema of {shown}: {first_line(error)}")
            return 1
        action = "checked" if existed else "created"
        say(f"schema {action} in {time.monotonic() - building:.1f}s")
    # Closing the session released the advisory lock: the next replica goes on.
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
