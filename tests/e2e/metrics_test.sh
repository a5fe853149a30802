#!/usr/bin/env bash
# Runs the metrics end-to-end test (unbound, aiosmtpd and python3-prometheus-client from Debian).
set -euo pipefail
if [[ ! -x /usr/sbin/unbound ]]; then echo "FAIL: unbound is not installed"; exit 1; fi
if ! /usr/bin/python3 -c "import aiosmtpd, prometheus_client.parser" 2>/dev/null; then
  echo "FAIL: python3-aiosmtpd or python3-prometheus-client is missing"; exit 1
fi
exec /usr/bin/python3 "$(dirname "$0")/metrics_test.py" "$1" "${@:2}"
