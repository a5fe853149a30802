#!/usr/bin/env bash
# Runs the submission end-to-end test with the built relayd and spool_dump.
set -euo pipefail
for tool in swaks openssl python3; do
  if ! command -v "$tool" >/dev/null; then echo "FAIL: $tool is not installed"; exit 1; fi
done
exec /usr/bin/python3 "$(dirname "$0")/submission_test.py" "$1" "$2" "${@:3}"
