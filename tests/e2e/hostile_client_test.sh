#!/usr/bin/env bash
# Runs the hostile-client end-to-end test with the built relayd.
set -euo pipefail
exec /usr/bin/python3 "$(dirname "$0")/hostile_client_test.py" "$1" "${@:2}"
