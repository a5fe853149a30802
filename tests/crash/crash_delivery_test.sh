#!/usr/bin/env bash
# Runs the end-to-end crash test (unbound from Debian; relayd and the project's smtp_sink).
set -euo pipefail
if [[ ! -x /usr/sbin/unbound ]]; then echo "FAIL: unbound is not installed"; exit 1; fi
exec /usr/bin/python3 "$(dirname "$0")/crash_delivery_test.py" "$1" "$2"
