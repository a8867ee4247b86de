#!/usr/bin/env bash
# Make sure Debian's wrk (an HTTP load generator written in C, with LuaJIT scripting) is
# installed: bench/api.py drives the read API with it, so the load costs the shared CPUs
# far less than a Python load generator would. Nothing is downloaded outside the
# distribution's packages. Safe to run repeatedly: it does nothing when wrk is present.
set -euo pipefail
if command -v wrk >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "wrk is missing and apt-get is not available; install it by hand (bench/api.py falls back to its Python load generator)" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  else
    echo "wrk is missing; run as root or install it: apt-get install wrk (bench/api.py falls back to its Python load generator)" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends wrk >/dev/null
command -v wrk
