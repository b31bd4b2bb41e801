#!/usr/bin/env bash
# Make sure PostgreSQL server binaries (initdb, pg_ctl, postgres) and postgres_fdw are on this machine.
# Installs Debian's postgresql + postgresql-contrib only when they are missing.
set -euo pipefail
have_pg() {
  for d in /usr/lib/postgresql/*/bin; do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
      share="$(dirname "$d")"; share="/usr/share/postgresql/$(basename "$share")/extension"
      [ -f "$share/postgres_fdw.control" ] && return 0
    fi
  done
  return 1
}
if have_pg; then exit 0; fi
echo "PostgreSQL server binaries not found: installing postgresql and postgresql-contrib" >&2
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql postgresql-contrib >/dev/null
have_pg
