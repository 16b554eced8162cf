#!/usr/bin/env bash
# The report's browser tests drive Debian's chromium (tests/test_report.py, Playwright). The
# README's test command runs this first: it installs chromium when it is missing (as root, or
# through passwordless sudo) and fails, saying why, when it cannot: those tests never skip.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
echo "installing Debian's chromium for the browser tests (apt-get)..." >&2
install='apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null'
if [ "$(id -u)" = 0 ]; then
  sh -c "$install"
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo -n sh -c "$install"
else
  echo "chromium is missing and cannot be installed here (needs root or sudo):" \
       "install Debian's chromium, or run the tests without the browser ones: -m 'not browser'" >&2
  exit 1
fi
command -v chromium >/dev/null 2>&1 || { echo "chromium still not found after apt-get" >&2; exit 1; }
