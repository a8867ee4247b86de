#!/usr/bin/env bash
# Install Debian packages with apt-get, as root or through sudo; the ensure-*.sh scripts
# call it when what they need is missing. Usage: apt-install.sh "WHAT (for messages)" PACKAGE...
# Nothing is downloaded outside the distribution's packages.
set -euo pipefail
what="$1"
shift
if ! command -v apt-get >/dev/null 2>&1; then
  echo "$what missing and apt-get is not available; install it by hand: $*" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  else
    echo "$what missing; run as root or install it: apt-get install $*" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
