#!/usr/bin/env bash
# Make sure Debian's Chromium and ChromeDriver are installed: the dashboard tests drive a
# real headless browser (/usr/bin/chromium through /usr/bin/chromedriver). Nothing is
# downloaded outside the distribution's packages. Safe to run repeatedly: it does nothing
# when both are present.
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  exit 0
fi
bash "$(dirname "$0")/apt-install.sh" "chromium/chromedriver are" chromium chromium-driver fonts-wqy-zenhei
/usr/bin/chromium --version
/usr/bin/chromedriver --version
