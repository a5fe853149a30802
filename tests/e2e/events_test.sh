#!/usr/bin/env bash
# Runs the events and webhooks end-to-end test (unbound, aiosmtpd and openssl from Debian).
set -euo pipefail
if [[ ! -x /usr/sbin/unbound ]]; then echo "FAIL: unbound is not installed"; exit 1; fi
if ! command -v openssl >/dev/null; then echo "FAIL: openssl is not installed"; exit 1; fi
if ! /usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null; then
  echo "FAIL: python3-aiosmtpd is not installed"; exit 1
fi
exec /usr/bin/python3 "$(dirname "$0")/events_test.py" "$1" "${@:2}"
