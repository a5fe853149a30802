#!/usr/bin/env bash
# Runs the pipelining end-to-end test (unbound, and Postfix's smtp-sink from the postfix package).
set -euo pipefail
if [[ ! -x /usr/sbin/unbound ]]; then echo "FAIL: unbound is not installed"; exit 1; fi
if [[ ! -x /usr/sbin/smtp-sink ]]; then
  echo "FAIL: smtp-sink is not installed (Debian package postfix)"; exit 1
fi
exec /usr/bin/python3 "$(dirname "$0")/pipeline_test.py" "$1" "${@:2}"
