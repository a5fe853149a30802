#!/usr/bin/env bash
# Runs the DSN-extension end-to-end test (unbound, aiosmtpd and Postfix's smtp-sink from Debian).
set -euo pipefail
if [[ ! -x /usr/sbin/unbound ]]; then echo "FAIL: unbound is not installed"; exit 1; fi
if [[ ! -x /usr/sbin/smtp-sink ]]; then echo "FAIL: smtp-sink (postfix) is not installed"; exit 1; fi
if ! /usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null; then
  echo "FAIL: python3-aiosmtpd is not installed"; exit 1
fi
exec /usr/bin/python3 "$(dirname "$0")/dsn_test.py" "$1" "${@:2}"
