#!/usr/bin/env bash
# Runs the metrics end-to-end test (unbound, aiosmtpd and python3-prometheus-client from Debian).
set -euo pipefail
if [[ ! -x /usr/sbin/unbound ]]; then echo "SKIP: unbound is not installed"; exit 0; fi
if ! /usr/bin/python3 -c "import aiosmtpd, prometheus_client.parser" 2>/dev/null; then
  echo "SKIP: python3-aiosmtpd or python3-prometheus-client is missing"; exit 0
fi
exec /usr/bin/python3 "$(dirname "$0")/metrics_test.py" "$1"
