#!/usr/bin/env bash
# Runs the RabbitMQ events end-to-end test (unbound, aiosmtpd, rabbitmq-server and pika from
# Debian). A missing one is a failure, never a skip.
set -euo pipefail
if [[ ! -x /usr/sbin/unbound ]]; then echo "FAIL: unbound is not installed"; exit 1; fi
if [[ ! -x /usr/lib/rabbitmq/bin/rabbitmq-server ]]; then
  echo "FAIL: rabbitmq-server is not installed"; exit 1
fi
for module in aiosmtpd pika; do
  if ! /usr/bin/python3 -c "import $module" 2>/dev/null; then
    echo "FAIL: python3-$module is not installed"; exit 1
  fi
done
exec /usr/bin/python3 "$(dirname "$0")/amqp_events_test.py" "$1" "${@:2}"
