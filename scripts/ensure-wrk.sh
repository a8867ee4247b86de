#!/usr/bin/env bash
# Make sure Debian's wrk (an HTTP load generator written in C, with LuaJIT scripting) is
# installed: bench/api.py drives the read API with it, so the load costs the shared CPUs
# far less than a Python load generator would. Nothing is downloaded outside the
# distribution's packages. Safe to run repeatedly: it does nothing when wrk is present.
set -euo pipefail
if command -v wrk >/dev/null 2>&1; then
  exit 0
fi
bash "$(dirname "$0")/apt-install.sh" "wrk is (bench/api.py falls back to its Python load generator)" wrk
command -v wrk
