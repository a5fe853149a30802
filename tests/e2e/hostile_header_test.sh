#!/usr/bin/env bash
# Runs the hostile-header end-to-end test (unbound) with the built relayd.
set -euo pipefail
if [[ ! -x /usr/sbin/unbound ]]; then echo "FAIL: unbound is not installed"; exit 1; fi
exec /usr/bin/python3 "$(dirname "$0")/hostile_header_test.py" "$1" "${@:2}"
