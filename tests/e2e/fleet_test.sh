#!/usr/bin/env bash
# Runs the fleet end-to-end test (redis-server, rabbitmq-server, unbound and aiosmtpd from Debian).
set -euo pipefail
if ! command -v redis-server >/dev/null; then echo "FAIL: redis-server is not installed"; exit 1; fi
if [[ ! -x /usr/lib/rabbitmq/bin/rabbitmq-server ]]; then
  echo "FAIL: rabbitmq-server is not installed"; exit 1
fi
if [[ ! -x /usr/sbin/unbound ]]; then echo "FAIL: unbound is not installed"; exit 1; fi
if ! /usr/bin/python3 -c 'import aiosmtpd, dns.resolver, pika' 2>/dev/null; then
  echo "FAIL: python3-aiosmtpd, python3-dnspython or python3-pika is not installed"; exit 1
fi
exec /usr/bin/python3 "$(dirname "$0")/fleet_test.py" "$1" "$2" "${@:3}"
