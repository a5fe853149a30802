#!/usr/bin/env bash
# Runs the returned-bounces-and-complaints end-to-end test (unbound and aiosmtpd from Debian).
set -euo pipefail
if [[ ! -x /usr/sbin/unbound ]]; then echo "FAIL: unbound is not installed"; exit 1; fi
if ! /usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null; then
  echo "FAIL: python3-aiosmtpd is not installed"; exit 1
fi
exec /usr/bin/python3 "$(dirname "$0")/returned_mail_test.py" "$1" "$2" "${@:3}"
