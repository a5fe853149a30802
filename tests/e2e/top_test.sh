#!/usr/bin/env bash
# Runs relayctl top's end-to-end test (tmux, unbound and aiosmtpd from Debian).
set -euo pipefail
if ! command -v tmux >/dev/null; then echo "FAIL: tmux is not installed"; exit 1; fi
if [[ ! -x /usr/sbin/unbound ]]; then echo "FAIL: unbound is not installed"; exit 1; fi
if ! /usr/bin/python3 -c "import aiosmtpd" 2>/dev/null; then
  echo "FAIL: python3-aiosmtpd is missing"; exit 1
fi
exec /usr/bin/python3 "$(dirname "$0")/top_test.py" "$1" "$2" "${@:3}"
