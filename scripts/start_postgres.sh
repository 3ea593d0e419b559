#!/usr/bin/env bash
# Start a local PostgreSQL for the guomen test suite and print its SQLAlchemy URL.
#
# Idempotent: installs the server package only if missing, starts the default cluster only if it
# is down, creates the role and database only if absent. Needs root (or the postgres user via
# runuser). The URL is the only line on stdout; progress goes to stderr.
set -euo pipefail

DB="${GUOMEN_PG_DB:-guomen_test}"
ROLE="${GUOMEN_PG_ROLE:-guomen}"
PASSWORD="${GUOMEN_PG_PASSWORD:-guomen}"
PORT="${GUOMEN_PG_PORT:-5432}"

log() { echo "start_postgres: $*" >&2; }

as_postgres() {
  if [ "$(id -u)" = "0" ]; then
    runuser -u postgres -- "$@"
  else
    sudo -u postgres "$@"
  fi
}

if ! command -v pg_lsclusters >/dev/null 2>&1; then
  log "installing postgresql"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
fi

# The first cluster listed by pg_lsclusters (Debian creates "main" on install).
read -r VERSION CLUSTER CPORT STATUS _ < <(pg_lsclusters --no-header | head -n 1) || true
if [ -z "${VERSION:-}" ]; then
  VERSION="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
  CLUSTER=main
  log "creating cluster $VERSION/$CLUSTER"
  pg_createcluster "$VERSION" "$CLUSTER" --port "$PORT" >&2
  CPORT="$PORT"
  STATUS=down
fi
if [ "$STATUS" != "online" ]; then
  log "starting cluster $VERSION/$CLUSTER on port $CPORT"
  pg_ctlcluster "$VERSION" "$CLUSTER" start >&2
fi

for _ in $(seq 1 30); do
  if as_postgres pg_isready -q -h 127.0.0.1 -p "$CPORT"; then break; fi
  sleep 0.5
done
as_postgres pg_isready -h 127.0.0.1 -p "$CPORT" >&2

psql_admin() { as_postgres psql -v ON_ERROR_STOP=1 -qAt -p "$CPORT" "$@"; }

if [ "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = '$ROLE'")" != "1" ]; then
  log "creating role $ROLE"
  psql_admin -c "CREATE ROLE \"$ROLE\" LOGIN PASSWORD '$PASSWORD'"
fi
if [ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$DB'")" != "1" ]; then
  log "creating database $DB"
  psql_admin -c "CREATE DATABASE \"$DB\" OWNER \"$ROLE\""
fi

echo "postgresql+psycopg://$ROLE:$PASSWORD@127.0.0.1:$CPORT/$DB"
