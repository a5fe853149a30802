#!/usr/bin/env bash
# Runs the DANE end-to-end test (unbound, ldnsutils and aiosmtpd from Debian).
set -euo pipefail
if [[ ! -x /usr/sbin/unbound ]]; then echo "FAIL: unbound is not installed"; exit 1; fi
if [[ ! -x /usr/bin/ldns-signzone ]]; then echo "FAIL: ldnsutils is not installed"; exit 1; fi
if ! /usr/bin/python3 -c 'import aiosmtpd, dns.resolver' 2>/dev/null; then
  echo "FAIL: python3-aiosmtpd or python3-dnspython is not installed"; exit 1
fi
exec /usr/bin/python3 "$(dirname "$0")/dane_test.py" "$1" "$2" "${@:3}"
