#!/usr/bin/env bash
# Start the local PostgreSQL 15 cluster if it is down, make sure the test role and database
# exist, and print the URL the app tests use. Safe to run any number of times.
# Needs root (it switches to the postgres user); FLAGSTAGE_PG_* override the names.
set -euo pipefail

VERSION="${FLAGSTAGE_PG_VERSION:-15}"
CLUSTER="${FLAGSTAGE_PG_CLUSTER:-main}"
ROLE="${FLAGSTAGE_PG_ROLE:-flagstage}"
PASSWORD="${FLAGSTAGE_PG_PASSWORD:-flagstage}"
DATABASE="${FLAGSTAGE_PG_DATABASE:-flagstage}"
HOST="${FLAGSTAGE_PG_HOST:-127.0.0.1}"
PORT="${FLAGSTAGE_PG_PORT:-5432}"

as_postgres() {
    if [ "$(id -un)" = postgres ]; then "$@"; else su postgres -c "$(printf '%q ' "$@")"; fi
}

if ! command -v pg_ctlcluster >/dev/null; then
    echo "postgres.sh: pg_ctlcluster not found; install PostgreSQL $VERSION" >&2
    exit 1
fi
if ! pg_lsclusters --no-header | awk -v v="$VERSION" -v c="$CLUSTER" \
        '$1 == v && $2 == c && $4 == "online" {found = 1} END {exit !found}'; then
    pg_ctlcluster "$VERSION" "$CLUSTER" start >&2
fi
for _ in $(seq 1 50); do
    pg_isready -q -h "$HOST" -p "$PORT" && break
    sleep 0.2
done

as_postgres psql -q -v ON_ERROR_STOP=1 -p "$PORT" -d postgres >&2 <<SQL
SELECT 'CREATE ROLE $ROLE LOGIN CREATEDB PASSWORD ''$PASSWORD'''
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$ROLE')\gexec
SELECT 'CREATE DATABASE $DATABASE OWNER $ROLE'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$DATABASE')\gexec
SQL

echo "postgresql://$ROLE:$PASSWORD@$HOST:$PORT/$DATABASE"
