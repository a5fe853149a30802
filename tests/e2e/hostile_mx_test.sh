#!/usr/bin/env bash
# Runs the hostile-MX end-to-end test (unbound from Debian; the MX is Python asyncio, no package).
set -euo pipefail
if [[ ! -x /usr/sbin/unbound ]]; then echo "FAIL: unbound is not installed"; exit 1; fi
exec /usr/bin/python3 "$(dirname "$0")/hostile_mx_test.py" "$1" "${@:2}"
