#!/usr/bin/env bash
# pgcopydb (the reference of the many-tables benchmark) from Debian's packages, when it is missing.
# Never fails the benchmark: without it, bench_many_tables.py measures ours alone and says why.
set -u
command -v pgcopydb >/dev/null 2>&1 && exit 0
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
{ $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq pgcopydb; } >/dev/null 2>&1 \
  || echo "pgcopydb could not be installed: the many-tables benchmark measures ours only" >&2
exit 0
