#!/usr/bin/env bash
# Make sure Debian's Chromium and ChromeDriver are installed: the dashboard tests drive a
# real headless browser (/usr/bin/chromium through /usr/bin/chromedriver). Nothing is
# downloaded outside the distribution's packages. Safe to run repeatedly: it does nothing
# when both are present.
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "chromium/chromedriver are missing and apt-get is not available; install them by hand" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  else
    echo "chromium/chromedriver are missing; run as root or install them: apt-get install chromium chromium-driver" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-wqy-zenhei >/dev/null
/usr/bin/chromium --version
/usr/bin/chromedriver --version
