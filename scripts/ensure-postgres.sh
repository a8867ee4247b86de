#!/usr/bin/env bash
# Start the local PostgreSQL cluster if it is not accepting connections.
# The tests need it; on this kind of machine it is installed but may be stopped.
set -euo pipefail
# The suite runs two pytest workers, each with connection pools, beside
# subprocesses that open their own: 100 connections (the default) is too few.
WANT_CONNECTIONS=300
raise_connections() {
  local now
  now=$(psql -h 127.0.0.1 -U postgres -Atc "SHOW max_connections" 2>/dev/null || echo 0)
  if [ "${now:-0}" -lt "$WANT_CONNECTIONS" ]; then
    psql -h 127.0.0.1 -U postgres -qc "ALTER SYSTEM SET max_connections = $WANT_CONNECTIONS"
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    pg_ctlcluster --skip-systemctl-redirect "$version" main restart
    for _ in $(seq 1 50); do
      pg_isready -q -h 127.0.0.1 -p 5432 && return 0
      sleep 0.2
    done
    echo "PostgreSQL did not come back after raising max_connections" >&2
    return 1
  fi
}
if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  raise_connections
  exit 0
fi
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  echo "PostgreSQL is not running and pg_ctlcluster is not installed" >&2
  exit 1
fi
version=$(ls /etc/postgresql | sort -V | tail -n 1)
pg_ctlcluster --skip-systemctl-redirect "$version" main start
for _ in $(seq 1 50); do
  if pg_isready -q -h 127.0.0.1 -p 5432; then
    raise_connections
    exit 0
  fi
  sleep 0.2
done
echo "PostgreSQL did not start" >&2
exit 1
