#!/usr/bin/env bash
# Runs tools/testing/harness_test.py with the system's Python.
set -euo pipefail
exec /usr/bin/python3 "$(dirname "$0")/harness_test.py"
