#!/usr/bin/env bash
# Entrypoint of k8s/images/postgres: the official postgres image's environment contract on
# Debian's packages, so the chart runs either image unchanged.
#
#   POSTGRES_PASSWORD     required to initialise; never printed
#   POSTGRES_USER         superuser created by initdb (default: postgres)
#   POSTGRES_DB           database created at initialisation (default: POSTGRES_USER)
#   PGDATA                data directory (default: /var/lib/postgresql/data)
#   POSTGRES_INITDB_ARGS  extra initdb arguments
#
# Not supported (the chart uses none of them): the *_FILE variants, POSTGRES_HOST_AUTH_METHOD and
# /docker-entrypoint-initdb.d scripts.
#
# An empty PGDATA is initialised on first start; after that the entrypoint only execs postgres
# (PID 1, so it receives the stop signal itself). Every TCP connection needs the password
# (scram-sha-256), loopback included; only the Unix socket inside the container is trusted.
set -Eeuo pipefail

if [[ "${1:-}" == -* ]]; then
  set -- postgres "$@"
fi
if [[ "${1:-}" != postgres ]]; then
  exec "$@"
fi

say() { printf 'docker-entrypoint: %s\n' "$*" >&2; }

if [[ "$(id -u)" == 0 ]]; then
  say "refusing to run PostgreSQL as root: run as the image's user (uid 999)"
  exit 1
fi

: "${PGDATA:=/var/lib/postgresql/data}"
POSTGRES_USER=${POSTGRES_USER:-postgres}
POSTGRES_DB=${POSTGRES_DB:-$POSTGRES_USER}
export PGDATA

mkdir -p /var/run/postgresql
chmod 3775 /var/run/postgresql 2>/dev/null || :

# initdb, a socket-only server to create POSTGRES_DB, and a clean stop, all in `target`.
initialise() {
  local target=$1
  mkdir -p "$target"
  # initdb fixes the mode itself where it can (not on a mount point owned by root).
  chmod 700 "$target" 2>/dev/null || :
  say "initialising $target (user $POSTGRES_USER, database $POSTGRES_DB)"
  # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of arguments, as upstream
  initdb -D "$target" --username="$POSTGRES_USER" \
    --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
    --encoding=UTF8 --auth-local=trust --auth-host=scram-sha-256 \
    ${POSTGRES_INITDB_ARGS:-} >&2
  # initdb's host lines cover loopback only; clients come from other pods, as in upstream's.
  printf '\n# Every other address, with the password (docker-entrypoint.sh).\nhost all all all scram-sha-256\n' \
    >>"$target/pg_hba.conf"
  # Not listening on TCP while it sets up: a client (or a readiness probe) that can connect
  # finds the database ready.
  pg_ctl -D "$target" -o "-c listen_addresses=''" -w start >&2
  if [[ "$POSTGRES_DB" != postgres ]]; then
    psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname postgres \
      --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";' >&2
  fi
  pg_ctl -D "$target" -m fast -w stop >&2
}

if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
  if [[ -z "${POSTGRES_PASSWORD:-}" ]]; then
    say "PGDATA ($PGDATA) is empty and POSTGRES_PASSWORD is not set: cannot initialise it"
    exit 1
  fi
  if [[ -d "$PGDATA" && -n "$(ls -A "$PGDATA")" ]]; then
    say "PGDATA ($PGDATA) is not empty but holds no cluster (no PG_VERSION): not touching it"
    exit 1
  fi
  parent=$(dirname "$PGDATA")
  if [[ -w "$parent" ]]; then
    # Initialise beside PGDATA and rename when done: a start killed halfway (a probe, an OOM)
    # leaves no half-made cluster behind, only a scratch directory the next start removes.
    scratch="$PGDATA.initialising"
    rm -rf "$scratch"
    initialise "$scratch"
    rmdir "$PGDATA" 2>/dev/null || :
    mv "$scratch" "$PGDATA"
  else
    # PGDATA is itself the mount point (as the image's default): initialise in place.
    initialise "$PGDATA"
  fi
  say "initialised; starting PostgreSQL"
fi

exec "$@"
